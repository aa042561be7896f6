"""The source-format registry: every format is one module of ``chatdata.sources.formats``, and everything else that
names formats (detection, the families a recipe names, the override check) is derived from those modules."""

from __future__ import annotations

import pkgutil
import sys
from pathlib import Path

import orjson
import pytest
from reads import read

from chatdata.errors import ChatdataError
from chatdata.sources import formats, registry
from chatdata.sources.detect import detect
from chatdata.sources.read import scan

ALPACA = '''"""Alpaca (``instruction``, ``input``, ``output``): the input follows the instruction after a blank line."""

from __future__ import annotations

import polars as pl

from chatdata.sources.checks import CHAT_ROLES
from chatdata.sources.formats import Format
from chatdata.sources.layout import Converted, convert_dialogues, record_reader, turn
from chatdata.sources.records import Field


def convert(frame: pl.DataFrame) -> Converted:
    prompt = pl.when(pl.col("input") != "").then(pl.col("instruction") + "\\n\\n" + pl.col("input"))
    user = prompt.otherwise(pl.col("instruction"))
    turns = pl.concat_list(turn("user", user), turn("assistant", pl.col("output")))
    return convert_dialogues(frame, turns, CHAT_ROLES)


FORMAT = Format(
    "alpaca",
    family="chat",
    table="dialogues",
    signature=("instruction", "input", "output"),
    read=record_reader((Field("instruction"), Field("input", required=False), Field("output")), convert),
)
'''


def test_every_format_is_the_module_named_after_it() -> None:
    modules = sorted(m.name for m in pkgutil.iter_modules(formats.__path__))
    assert sorted(registry.FORMATS) == modules
    assert registry.KINDS == ("chat", "dolly", "oasst", "prefs")
    # detection order: a record holding several signatures is of the first (UltraFeedback rows carry `messages`)
    assert list(registry.FORMATS).index("prefs_ultrafeedback") < list(registry.FORMATS).index("chat_messages")
    assert registry.of_kind("oasst") == ["oasst_trees", "oasst_messages", "oasst_parquet"]
    assert {f.table for f in registry.FORMATS.values() if f.family == "prefs"} == {"pairs"}


def test_unknown_names_are_one_line_errors_listing_the_known_ones() -> None:
    with pytest.raises(ChatdataError) as err:
        registry.check_format("alpaca")
    assert str(err.value) == f"unknown format 'alpaca'; use one of {', '.join(sorted(registry.FORMATS))}"
    with pytest.raises(ChatdataError, match=r"unknown source kind 'alpaca'; use one of chat, dolly, oasst, prefs$"):
        registry.check_kind("alpaca")


def test_a_new_format_is_one_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module declaring ``FORMAT`` beside the others is found, detected by its signature and read into its
    family's table; nothing else changes."""
    more = tmp_path / "more"
    more.mkdir()
    (more / "alpaca.py").write_text(ALPACA)
    monkeypatch.setattr(formats, "__path__", [*formats.__path__, str(more)])
    try:
        declared = registry._declared()
    finally:
        sys.modules.pop(f"{formats.__name__}.alpaca", None)
    assert list(declared)[-1] == "alpaca"  # the default precedence comes after every shipped format
    monkeypatch.setitem(registry.FORMATS, "alpaca", declared["alpaca"])
    data = tmp_path / "data"
    data.mkdir()
    records = [
        {"instruction": "Add 2 and 3.", "input": "", "output": "5"},
        {"instruction": "Translate.", "input": "bonjour", "output": "hello"},
        {"instruction": "Say nothing.", "input": "", "output": " "},
    ]
    (data / "alpaca_data.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    assert detect(data / "alpaca_data.jsonl") == "alpaca"
    assert [(f.name, f.format) for f in scan(data, "chat")[0]] == [("alpaca_data.jsonl", "alpaca")]
    got = read(data, "chat")
    assert got.frames["dialogues"]["messages"].to_list()[1] == [
        {"role": "user", "content": "Translate.\n\nbonjour"},
        {"role": "assistant", "content": "hello"},
    ]
    assert got.rejects.select("source_line", "reason").rows() == [(3, "empty_response")]
    assert [(f.format, f.records) for f in got.files] == [("alpaca", 3)]
