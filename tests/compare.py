"""Compare files and folders by hash: a failing ``==`` on megabytes makes pytest render a diff for minutes."""

from __future__ import annotations

import hashlib
from pathlib import Path


def digest(data: bytes | Path) -> str:
    return hashlib.sha256(data.read_bytes() if isinstance(data, Path) else data).hexdigest()


def first_difference(a: bytes, b: bytes) -> str:
    """Where two byte strings first differ, with 40 bytes of context (never the whole strings)."""
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"first difference at byte {at} of {len(a)} / {len(b)}: {a[at : at + 40]!r} vs {b[at : at + 40]!r}"


def same_bytes(a: bytes | Path, b: bytes | Path) -> str | None:
    """None when ``a`` and ``b`` hold the same bytes, else a one-line description of the first difference."""
    if digest(a) == digest(b):
        return None
    return first_difference(a.read_bytes() if isinstance(a, Path) else a, b.read_bytes() if isinstance(b, Path) else b)


def assert_same_bytes(a: bytes | Path, b: bytes | Path, label: str = "") -> None:
    difference = same_bytes(a, b)
    assert difference is None, f"{label or a}: {difference}"


def files_of(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def assert_same_tree(a: Path, b: Path) -> None:
    """The two folders hold the same files with the same bytes."""
    names = files_of(a)
    assert names == files_of(b), f"{a} and {b} hold different files"
    assert names, f"{a} is empty"
    for name in names:
        assert_same_bytes(a / name, b / name, name)


def without_changes(folder: Path) -> dict[str, bytes]:
    """A built folder's files as bytes, less the record of the version it replaced
    (:func:`chatdata.card.without_changes`): a fresh build has none."""
    from chatdata.card.render import without_changes as strip

    kept = {name: strip(name, (folder / name).read_bytes()) for name in files_of(folder)}
    return {name: data for name, data in kept.items() if data is not None}


def assert_same_build(a: Path, b: Path) -> None:
    """``a`` and ``b`` hold the same dataset: the same files and bytes, but for the record of the version a
    rebuild replaced (:func:`without_changes`)."""
    left, right = without_changes(a), without_changes(b)
    assert sorted(left) == sorted(right), f"{a} and {b} hold different files"
    for name in left:
        assert_same_bytes(left[name], right[name], name)
