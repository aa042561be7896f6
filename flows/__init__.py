"""Prefect flows and deployments wrapping chatdata's library stages (the library itself never imports Prefect)."""
