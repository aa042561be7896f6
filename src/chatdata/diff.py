"""What changed between two versions of a recipe's dataset, and why (``chatdata diff OLD NEW``).

Rows are matched by identity, not position: an oasst row by its ``message_ids`` path (a pair's path ends with its
two replies), any other row by its ``source`` and record (``source_file``, ``source_line``). A row of both versions
is ``unchanged``, ``changed`` (other content: messages, text, pair sides or scores) or ``moved`` (another split);
the others are ``added`` or ``removed``. Each removed row is explained by the first reject, in pipeline order, of
the row or of one of its messages in NEW's rejects table (``stage:reason``), by ``gone_from_source`` when NEW
read none of its messages, or by ``messages_in_other_rows`` when NEW kept its messages in other rows (a thread
that grew longer); each added row likewise by ``new_in_source`` or ``no_longer_rejected:<stage:reason>`` from
OLD's rejects. Only identity columns and one content hash per row are read into memory (the content columns are
hashed as they are read); the rejects tables give their identity columns and reasons.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from chatdata.errors import ChatdataError

#: columns that make a row's content (what ``changed`` compares); those present are hashed
CONTENT = ("messages", "text", "prompt", "chosen", "rejected", "score_chosen", "score_rejected")
_SPLIT_FILE = re.compile(r"^(?P<split>.+)-\d{5}-of-\d{5}\.parquet$")
#: examples shown per category
EXAMPLES = 3
CATEGORIES = ("added", "removed", "changed", "unchanged", "moved")


class DiffError(ChatdataError):
    """OLD or NEW is not a dataset chatdata wrote."""


@dataclass(frozen=True)
class Version:
    """One side of a diff: its rows (``id``, ``split``, ``h``: content hash, ``mids``: message ids), its rejects
    (``id``, ``mid``, ``key``: stage:reason, ``order``) and every message id it read (rows and rejects)."""

    label: str
    rows: pl.DataFrame
    rejects: pl.DataFrame
    read: pl.DataFrame


def _row_identity(names: Iterable[str]) -> pl.Expr:
    """A row's identity: ``source|path`` of its message ids (oasst; a pair's path ends with both replies), else
    its record (``source|file:line``)."""
    cols = set(names)
    if not {"message_ids", "source_line"} & cols:
        raise DiffError("rows carry neither message_ids nor source_file/source_line: no identity to match them by")
    path = (
        pl.when(pl.col("message_ids").list.len() > 0).then(
            pl.concat_str(pl.col("source").fill_null(""), pl.lit("|"), pl.col("message_ids").list.join("/"))
        )
        if "message_ids" in cols
        else pl.lit(None, pl.String)
    )
    return pl.coalesce(path, _record(cols)).alias("id")


def _record(names: Iterable[str]) -> pl.Expr:
    """``source|file:line`` of a record of a source other than oasst (null when the columns are missing)."""
    if "source_line" not in set(names):
        return pl.lit(None, pl.String)
    return pl.concat_str(
        pl.col("source").fill_null(""), pl.lit("|"), pl.col("source_file").fill_null(""), pl.lit(":"),
        pl.col("source_line").cast(pl.String),
    )  # fmt: skip


def _reject_key(names: Iterable[str], dialogue: str) -> pl.Expr:
    """How a dialogue's (or pair's) rejects name it: ``source|dialogue id`` (a thread's last message, a pair's
    ``chosen-vs-rejected``), else its record."""
    cols = set(names)
    by_id = (
        pl.concat_str(pl.col("source").fill_null(""), pl.lit("|"), pl.col(dialogue))
        if dialogue in cols
        else pl.lit(None, pl.String)
    )
    return pl.coalesce(by_id, _record(cols))


def _files(folder: Path, config: str) -> dict[str, list[Path]]:
    """The Parquet files of a config's splits: data/SPLIT-0000K-of-0000N.parquet (rejects/ for the rejects)."""
    out: dict[str, list[Path]] = {}
    for path in sorted((folder / config).glob("*.parquet")):
        m = _SPLIT_FILE.match(path.name)
        if m:
            out.setdefault(m.group("split"), []).append(path)
    return out


def read_version(folder: Path, label: str, stages: list[str] | None = None) -> Version:
    """The identity, split and content hash of every row of ``folder`` (a recipe's output folder), and its
    rejects' identities and ``stage:reason`` in pipeline order (``stages``, by default its build record's
    ledger's)."""
    if stages is None:
        from chatdata.record import BuildRecord, RecordError

        try:
            stages = [r.stage for r in BuildRecord.read(folder).ledger]
        except RecordError as exc:
            raise DiffError(f"{label} {exc}") from None
    stages = list(dict.fromkeys(stages))
    frames = []
    for split, paths in _files(folder, "data").items():
        lazy = pl.scan_parquet(paths)
        names = lazy.collect_schema().names()
        content = [c for c in CONTENT if c in names]
        frames.append(
            lazy.select(
                _row_identity(names),
                _reject_key(names, "dialogue_id").alias("rkey"),
                pl.lit(split).alias("split"),
                pl.struct(content).hash(7).alias("h") if content else pl.lit(0, pl.UInt64).alias("h"),
                (pl.col("message_ids") if "message_ids" in names else pl.lit(None, pl.List(pl.String))).alias("mids"),
            ).collect()
        )
    schema = {"id": pl.String, "rkey": pl.String, "split": pl.String, "h": pl.UInt64, "mids": pl.List(pl.String)}
    rows = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame(schema=schema)
    duplicated = rows.filter(pl.col("id").is_duplicated())
    if duplicated.height:
        raise DiffError(f"{label} {folder}: row {duplicated.item(0, 'id')!r} is there twice; cannot match rows")
    rejects = _read_rejects(folder, stages)
    read = (
        pl.concat([rows.select(pl.col("mids").explode().alias("mid")), rejects.select("mid")], how="vertical_relaxed")
        .drop_nulls()
        .unique()
    )
    return Version(label, rows, rejects, read)


def _read_rejects(folder: Path, stages: list[str]) -> pl.DataFrame:
    """Every reject's ``stage:reason``, its stage's place in the pipeline (``order``) and its row in the table
    (``_n``), with the row it names (``rkey``: a dialogue's or pair's id, or a record) or the message (``mid``);
    payloads are not read."""
    schema = {"rkey": pl.String, "mid": pl.String, "key": pl.String, "order": pl.Int64, "_n": pl.Int64}
    paths = [p for ps in _files(folder, "rejects").values() for p in ps]
    if not paths:
        return pl.DataFrame(schema=schema)
    order = {s: i for i, s in enumerate(stages)}
    lazy = pl.scan_parquet(paths).with_row_index("_n")
    names = lazy.collect_schema().names()
    message = pl.col("unit") == "message"
    frame = lazy.select(
        pl.when(~message).then(_reject_key(names, "message_id")).alias("rkey"),
        pl.when(message).then(pl.col("message_id")).alias("mid"),
        pl.concat_str(pl.col("stage"), pl.lit(":"), pl.col("reason")).alias("key"),
        pl.col("stage").replace_strict(order, default=len(order), return_dtype=pl.Int64).alias("order"),
        "_n",
    ).collect()
    return frame.cast(schema)  # type: ignore[arg-type]


def _first_reason(rows: pl.DataFrame, rejects: pl.DataFrame) -> pl.DataFrame:
    """``id`` -> ``reason``: the first reject of the row itself or of one of its messages, in pipeline order
    (its stage's place), then the earliest message of the row (a deleted root, before the replies it takes with
    it), then the rejects table's order."""
    own = (
        rows.select("id", "rkey")
        .join(rejects.filter(pl.col("rkey").is_not_null()), on="rkey")
        .select("id", "key", "order", pl.lit(-1, pl.Int64).alias("pos"), "_n")
    )
    messages = (
        rows.select("id", pl.col("mids").alias("mid"), pl.int_ranges(pl.col("mids").list.len()).alias("pos"))
        .explode("mid", "pos")
        .drop_nulls("mid")
        .join(rejects.filter(pl.col("mid").is_not_null()).drop("rkey"), on="mid")
        .select("id", "key", "order", pl.col("pos").cast(pl.Int64), "_n")
    )
    both = pl.concat([own, messages], how="vertical_relaxed")
    ordered = both.sort("order", "pos", "_n")
    return ordered.group_by("id", maintain_order=True).agg(pl.col("key").first().alias("reason"))


def _explain(rows: pl.DataFrame, other: Version, *, rejected: str, missing: str, elsewhere: str) -> pl.DataFrame:
    """Each of ``rows`` with the reason the other version gives: its first reject there (``rejected`` prefix), or
    ``missing`` when the other version read none of its messages, else ``elsewhere``."""
    first = _first_reason(rows, other.rejects)
    seen = (
        rows.select("id", pl.col("mids").alias("mid"))
        .explode("mid")
        .join(other.read.with_columns(pl.lit(True).alias("_seen")), on="mid", how="left")
        .group_by("id")
        .agg(pl.col("_seen").any().fill_null(False))
    )
    return (
        rows.select("id", "split")
        .join(first, on="id", how="left")
        .join(seen, on="id", how="left")
        .select(
            "id",
            "split",
            pl.when(pl.col("reason").is_not_null())
            .then(pl.lit(rejected) + pl.col("reason"))
            .when(pl.col("_seen").fill_null(False))
            .then(pl.lit(elsewhere))
            .otherwise(pl.lit(missing))
            .alias("reason"),
        )
    )


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if not frame.height:
        return {}
    pairs = frame.group_by(column).len().sort(["len", column], descending=[True, False]).iter_rows()
    return {str(k): int(n) for k, n in pairs}


def diff_versions(old: Version, new: Version) -> dict[str, Any]:
    """The changes from ``old`` to ``new`` (the fields of ``chatdata diff --json``)."""
    joined = old.rows.join(new.rows, on="id", how="full", suffix="_new", coalesce=True)
    in_old, in_new = pl.col("split").is_not_null(), pl.col("split_new").is_not_null()
    category = (
        pl.when(in_old & ~in_new).then(pl.lit("removed"))
        .when(~in_old & in_new).then(pl.lit("added"))
        .when(pl.col("split") != pl.col("split_new")).then(pl.lit("moved"))
        .when(pl.col("h") != pl.col("h_new")).then(pl.lit("changed"))
        .otherwise(pl.lit("unchanged"))
    )  # fmt: skip
    rows = joined.with_columns(category.alias("category")).sort("id")
    removed = rows.filter(pl.col("category") == "removed").select("id", "rkey", "split", "mids")
    added = rows.filter(pl.col("category") == "added").select(
        "id", pl.col("rkey_new").alias("rkey"), pl.col("split_new").alias("split"), pl.col("mids_new").alias("mids")
    )
    removed_why = _explain(removed, new, rejected="", missing="gone_from_source", elsewhere="messages_in_other_rows")
    added_why = _explain(
        added, old, rejected="no_longer_rejected:", missing="new_in_source", elsewhere="messages_in_other_rows"
    )
    out: dict[str, Any] = {c: int((rows.get_column("category") == c).sum()) for c in CATEGORIES}
    out["removed_by_reason"] = _counts(removed_why, "reason")
    out["added_by_cause"] = _counts(added_why, "reason")
    splits: dict[str, dict[str, Any]] = {}
    for split in sorted(set(old.rows.get_column("split").unique()) | set(new.rows.get_column("split").unique())):
        mine = rows.filter((pl.col("split") == split) | (pl.col("split_new") == split))
        entry = {
            "old": int((mine.get_column("split") == split).sum()),
            "new": int((mine.get_column("split_new") == split).sum()),
            "added": int((mine.get_column("category") == "added").sum()),
            "removed": int((mine.get_column("category") == "removed").sum()),
            "changed": int((mine.get_column("category") == "changed").sum()),
            "unchanged": int((mine.get_column("category") == "unchanged").sum()),
            "moved_in": int(((mine.get_column("category") == "moved") & (mine.get_column("split_new") == split)).sum()),
            "moved_out": int(((mine.get_column("category") == "moved") & (mine.get_column("split") == split)).sum()),
            "removed_by_reason": _counts(removed_why.filter(pl.col("split") == split), "reason"),
            "added_by_cause": _counts(added_why.filter(pl.col("split") == split), "reason"),
        }
        splits[split] = entry
    out["splits"] = splits
    out["examples"] = {
        c: rows.filter(pl.col("category") == c).get_column("id").head(EXAMPLES).to_list()
        for c in CATEGORIES
        if c != "unchanged"
    }
    old_rejects, new_rejects = _counts(old.rejects, "key"), _counts(new.rejects, "key")
    out["rejects"] = {
        key: {"old": old_rejects.get(key, 0), "new": new_rejects.get(key, 0)}
        for key in sorted(set(old_rejects) | set(new_rejects))
        if old_rejects.get(key, 0) != new_rejects.get(key, 0)
    }
    out["rows"] = {"old": old.rows.height, "new": new.rows.height}
    return out


def shrink_summary(changes: dict[str, Any]) -> str:
    """The split that lost the largest share of its rows and the reason that removed most of them, e.g.
    ``-48 % of train_sft: 9,210 rows removed by gates:tree_state_not_allowed``; empty when nothing shrank."""
    shrunk = [
        (s["new"] / s["old"] - 1, name, s) for name, s in changes["splits"].items() if s["old"] and s["new"] < s["old"]
    ]
    if not shrunk:
        return ""
    share, name, split = min(shrunk)
    reasons = split["removed_by_reason"]
    if not reasons:
        return f"{share:.0%} of {name}"
    reason, n = next(iter(reasons.items()))
    return f"{share:.0%} of {name}: {n:,} rows removed by {reason}"


def diff(old: str | Path, new: str | Path) -> dict[str, Any]:
    """``chatdata diff OLD NEW`` as data, for two output folders (:func:`chatdata.hub.source.dataset_folder`
    brings a Hub version down as one)."""
    sides = []
    for label, where in (("OLD", old), ("NEW", new)):
        path = Path(where).expanduser()
        if not path.is_dir():
            raise DiffError(f"{label} {where}: no such folder (give a recipe's output folder or a Hub dataset id)")
        sides.append(read_version(path, label))
    return diff_versions(*sides)


def render(changes: dict[str, Any], console: Any, *, title: str) -> None:
    """``changes`` as terminal tables (rich): the categories overall and per split, why rows went and came, and
    the reject reasons that grew or shrank."""
    from rich.table import Table

    overall = Table(title=title, title_justify="left")
    overall.add_column("split")
    for col in ("old", "new", "added", "removed", "changed", "moved in", "moved out", "unchanged"):
        overall.add_column(col, justify="right")
    rows = changes["rows"]
    for split, s in changes["splits"].items():
        overall.add_row(
            split,
            *(f"{s[k]:,}" for k in ("old", "new", "added", "removed", "changed", "moved_in", "moved_out", "unchanged")),
        )
    moved = changes["moved"]
    overall.add_row(
        "all", f"{rows['old']:,}", f"{rows['new']:,}", *(f"{changes[k]:,}" for k in ("added", "removed", "changed")),
        f"{moved:,}", f"{moved:,}", f"{changes['unchanged']:,}",
    )  # fmt: skip
    print_table(console, overall)
    for key, heading in (("removed_by_reason", "removed, by reason"), ("added_by_cause", "added, by cause")):
        if changes[key]:
            table = Table(title=heading, title_justify="left")
            table.add_column("reason")
            table.add_column("rows", justify="right")
            for reason, n in changes[key].items():
                table.add_row(reason, f"{n:,}")
            print_table(console, table)
    if changes["rejects"]:
        table = Table(title="rejects (stage:reason)", title_justify="left")
        for col, justify in (("reason", "left"), ("old", "right"), ("new", "right"), ("change", "right")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for reason, n in changes["rejects"].items():
            table.add_row(reason, f"{n['old']:,}", f"{n['new']:,}", f"{n['new'] - n['old']:+,}")
        print_table(console, table)
    for category, ids in changes["examples"].items():
        if ids:
            console.print(f"{category}, e.g.: " + ", ".join(ids), highlight=False, markup=False, soft_wrap=True)


def print_table(console: Any, table: Any) -> None:
    """A rich table at its natural width when piped (80 columns would fold every long reason), wrapped to the
    terminal's width otherwise."""
    width = console.width
    if not console.is_terminal:
        console.width = 10_000
        console.width = max(width, console.measure(table).maximum)
    try:
        console.print(table)
    finally:
        console.width = width
