"""Readers that map public chat datasets onto chatdata's canonical tables.

Each format is one module of :mod:`chatdata.sources.formats` (its family, table, signature and reader), listed by
:mod:`chatdata.sources.registry`; :mod:`chatdata.sources.detect` tells a file's format by its columns or keys (the file
name only a hint), :mod:`chatdata.sources.read` finds a source's files and reads each in batches.

Output contract (what the engine consumes), by the table a format fills:

- ``messages`` (oasst): ``MESSAGE_SCHEMA`` rows, as the readers of :mod:`chatdata.ingest` give them.
- ``dialogues`` (SFT: dolly, chat): ``dialogue_id`` (str, ``f"{source}:{source_line}"``), ``message_tree_id``
  (= ``dialogue_id``: each row is its own split unit), ``message_ids`` (list[str] = ``[dialogue_id]``),
  ``messages`` (list of struct{role: str, content: str}), ``lang`` (str or null: ``"en"`` for Dolly, null
  otherwise), ``source_split`` (``train``/``validation``/null from the file name, as
  :func:`chatdata.sources.read.split_from_name`: ``train-…``, ``train_sft-…``, ``test_prefs-…``), ``n_turns`` (Int32),
  ``source`` (the file's path relative to the read root), ``source_line`` (Int64, the 1-based line, array element
  or Parquet row), then per-format extras (Dolly: ``category``).
- ``pairs`` (prefs): ``prompt``, ``prompt_id`` (sha256 hex of ``prompt``), ``chosen``, ``rejected``, ``messages``
  (= ``chosen``), ``score_chosen``, ``score_rejected`` (Float64, null when absent), ``dialogue_id``,
  ``message_tree_id``, ``message_ids`` (as above), ``rank_chosen``, ``rank_rejected`` (Int32, null), ``lang``
  (null), ``source_split``, ``n_turns`` (Int32, turns of ``chosen``), ``source``, ``source_line``: the columns and
  types of :func:`chatdata.pairs.build_pairs` plus ``source``/``source_line``.
- rejects (``REJECT_SCHEMA``, ``source``/``source_line`` set): stage ``ingest``, unit ``line``, for records that
  cannot be read (``malformed_json``, ``not_an_object``, ``missing_field``, ``wrong_type``); stage ``convert``,
  unit ``dialogue`` or ``pair`` (``message_tree_id`` = the would-be ``dialogue_id``), for records that cannot
  become a row (``unknown_role``, ``empty_conversation``, ``roles_not_alternating``, ``no_reply``,
  ``empty_prompt``, ``empty_response``, ``prefix_mismatch``, ``identical_replies``). Every record is a row or a
  reject: ``SourceFile.records`` = rows + rejects of the file.
"""
