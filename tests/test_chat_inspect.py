"""``chatdata inspect`` library side: reading messages, the rich view and the one-object JSON mode."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from chat_tokenizer import byte_level_bpe
from rich.console import Console

from chatdata.chat.inspect import inspect_messages, read_messages
from chatdata.chat.masks import IGNORE_INDEX
from chatdata.errors import ChatdataError, InputError

PAIR = [
    {"role": "user", "content": "Hello, can you help me?"},
    {"role": "assistant", "content": "Sure, what can I do for you?"},
]


def test_read_messages_from_a_list_an_object_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "list.json").write_text(json.dumps(PAIR))
    (tmp_path / "obj.json").write_text(json.dumps({"messages": PAIR, "id": 3}))
    assert read_messages(tmp_path / "list.json") == PAIR
    assert read_messages(str(tmp_path / "obj.json")) == PAIR
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"messages": PAIR})))
    assert read_messages("-") == PAIR
    assert read_messages(io.StringIO(json.dumps(PAIR))) == PAIR


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[{", "not JSON"),
        ('{"turns": []}', "expected a JSON list"),
        ("[]", "non-empty JSON list"),
        ('[{"role": "user"}]', "message 1 is not an object"),
        ('[{"role": "user", "content": 3}]', "message 1 is not an object"),
    ],
)
def test_read_messages_rejects_bad_input_in_one_line(tmp_path: Path, raw: str, message: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(raw)
    with pytest.raises(InputError, match=message) as info:
        read_messages(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InputError, match="cannot read"):
        read_messages(tmp_path / "absent.json")


def test_json_mode_prints_exactly_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    result = inspect_messages(PAIR, byte_level_bpe(), "starchat", "starchat", 64, as_json=True)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    payload = json.loads(out)
    assert set(payload) == {"text", "input_ids", "labels"}
    assert payload["text"].startswith("<|user|>\nHello")
    assert len(payload["input_ids"]) == len(payload["labels"]) == 25
    assert payload["labels"][:11] == [IGNORE_INDEX] * 11 and result["ok"]


def test_json_mode_cuts_to_max_length(capsys: pytest.CaptureFixture[str]) -> None:
    inspect_messages(PAIR, byte_level_bpe(), max_length=5, as_json=True)
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["input_ids"]) == 5 and set(payload["labels"]) == {IGNORE_INDEX}


def test_rich_view_shows_counts_verdict_and_styles() -> None:
    console = Console(record=True, width=120, force_terminal=True, color_system="truecolor")
    result = inspect_messages(PAIR, byte_level_bpe(), "chatml", "content_only", 64, console=console)
    plain = console.export_text(clear=False, styles=False)
    assert "tokens 31" in plain and "trained 11" in plain and "verdict: ok" in plain
    assert "Sure" in plain and "added special tokens <|im_start|>" in plain
    styled = console.export_text(styles=True)
    assert "\x1b[2m" in styled  # masked tokens dimmed
    assert result["ok"] and result["reason"] is None


def test_rich_view_shows_a_rejection() -> None:
    console = Console(record=True, width=200)
    result = inspect_messages(PAIR, byte_level_bpe(), max_length=8, console=console)
    assert not result["ok"]
    assert "verdict: rejected — truncated" in console.export_text()


def test_unrenderable_dialogue_is_one_line_error() -> None:
    with pytest.raises(ChatdataError, match="role_order"):
        inspect_messages([PAIR[1]], byte_level_bpe(), as_json=True)
