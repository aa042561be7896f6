"""Deterministic synthetic OpenAssistant-shaped data: forests in the Hub schema, and the bundled sample.

``generate_forest(n)`` grows oasst-like conversation trees (prompter roots, alternating roles, 1-5 ranked
assistant replies per prompter with some unranked groups and rank gaps, deleted/spam/synthetic messages, a
long tail of tree sizes) and renders texts in twelve languages from hand-written sentence banks. Everything is
vectorised with numpy and pyarrow, and every random number comes from ``PCG64`` raw bits via
``SeedSequence(seed, spawn_key=(chunk,))``, so the same call gives the same table on any run (no hash
randomisation, no set order, no numpy distribution code).

``write_forest`` streams chunks into Hub-layout Parquet parts (``data/train-0000K-of-0000N.parquet``, ~5 % of
trees in ``validation``); ``write_sample`` writes the bundled sample plus a messages-JSONL file of deliberate
defects. ``python -m chatdata.synth sample`` / ``python -m chatdata.synth forest --messages N --out DIR``.

Modules, each importing only the ones before it: ``rng`` (random numbers, UUIDs), ``banks`` (sentence banks,
piece table), ``shape`` (tree shapes), ``text`` (message kinds and texts), ``columns`` (metadata columns),
``forest`` (tables of whole trees), ``writer`` (Parquet parts), ``sample`` (the bundled sample), ``cli``.
"""
