"""Builders for small handmade oasst files used across tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def m(mid: str, parent: str | None, role: str, text: str | None = None, **kw: Any) -> dict[str, Any]:
    """One oasst message record (messages.jsonl shape); sensible defaults for a clean, ready message."""
    rec: dict[str, Any] = {
        "message_id": mid,
        "parent_id": parent,
        "role": role,
        "text": text if text is not None else f"text of {mid}",
        "lang": "en",
        "review_count": 3,
        "review_result": True,
        "deleted": False,
        "synthetic": False,
        "tree_state": "ready_for_export",
        "created_date": f"2023-02-0{min(9, 1 + len(mid) % 9)}T10:00:00+00:00",
    }
    rec.update(kw)
    return rec


def write_jsonl(path: Path, records: list[Any]) -> Path:
    lines = []
    for r in records:
        lines.append(r.encode() if isinstance(r, str) else orjson.dumps(r))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path
