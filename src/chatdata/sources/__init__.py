"""Readers that map public chat datasets onto chatdata's canonical tables.

Families (``kind``) and their fine formats (:func:`detect`), each told by its columns or keys, the file name only a
hint, each read from Parquet, JSON Lines or a JSON array (gzip or not) in batches:

- ``oasst``: ``oasst_parquet``, ``oasst_messages``, ``oasst_trees`` (:mod:`chatdata.ingest`, canonical messages);
- ``dolly``: ``dolly`` (:mod:`.dolly`, StarChat-α's instruction + context blend);
- ``chat``: ``chat_messages`` (TRL/H4 ``messages``), ``sharegpt`` (``conversations``) (:mod:`.chat`);
- ``prefs``: ``prefs_ultrafeedback``, ``prefs_orca`` (:mod:`.prefs`).

Output contract (what the engine consumes):

- ``messages`` (oasst): ``MESSAGE_SCHEMA`` rows, exactly as :func:`chatdata.ingest.read_path` gives them.
- ``dialogues`` (SFT: dolly, chat): ``dialogue_id`` (str, ``f"{source}:{source_line}"``), ``message_tree_id``
  (= ``dialogue_id``: each row is its own split unit), ``message_ids`` (list[str] = ``[dialogue_id]``),
  ``messages`` (list of struct{role: str, content: str}), ``lang`` (str or null: ``"en"`` for Dolly, null
  otherwise), ``source_split`` (``train``/``validation``/null from the file name, as
  :func:`chatdata.ingest.split_from_name`: ``train-…``, ``train_sft-…``, ``test_prefs-…``), ``n_turns`` (Int32),
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

Entry points: :func:`read_source` (whole) and :func:`iter_source` (batches); :func:`scan` lists the files and the
skipped ones with a reason.
"""

from chatdata.detect import KINDS, SkippedFile, detect
from chatdata.sources.read import SourceBatch, SourceRead, iter_source, read_source, scan
from chatdata.sources.tables import DIALOGUE_SCHEMA, PAIR_SCHEMA

__all__ = [
    "DIALOGUE_SCHEMA",
    "KINDS",
    "PAIR_SCHEMA",
    "SkippedFile",
    "SourceBatch",
    "SourceRead",
    "detect",
    "iter_source",
    "read_source",
    "scan",
]
