"""The dataset card (README.md) of a built folder: YAML metadata that matches the files exactly
(:mod:`~chatdata.card.metadata`), a body that explains the data (:mod:`~chatdata.card.statistics`), rendered from
the Jinja templates in ``data_cards/`` (:mod:`~chatdata.card.render`) with safe Markdown
(:mod:`~chatdata.card.markdown`).

Entry point: :func:`write_record` (the write phase, inside the atomic temp folder, after the Parquet files) writes
``build.json`` and the card with its PNG plots (:mod:`chatdata.plots`). Every value a template prints is
Markdown-escaped unless a filter marked it safe; YAML comes only from a SafeDumper; local absolute paths never
reach the card. Orders are canonical and no clock is read, so the same build and files give the same bytes.
"""
