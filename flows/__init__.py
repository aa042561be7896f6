"""Prefect flows and deployments over chatdata's library stages (the library never imports Prefect)."""
