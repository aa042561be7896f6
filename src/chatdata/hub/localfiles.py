"""The local side of a publish: a built folder's files with their sizes and Git/LFS hashes, and its card's front
matter checked against the files it names."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chatdata.errors import InputError
from chatdata.hub.client import (
    one_line,
)

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    path: str
    abspath: Path
    size: int
    sha256: str
    git_sha1: str


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _hash_file(path: Path, size: int) -> tuple[str, str]:
    """(sha256, git blob sha1) in one pass: what the Hub reports for LFS and regular files."""
    sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha256.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


def scan_folder(folder: Path) -> dict[str, LocalFile]:
    """Validate a built dataset folder and hash its files (hidden files and folders are skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such dataset folder; build it first with `chatdata build`")
    files: dict[str, LocalFile] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        size = path.stat().st_size
        sha256, sha1 = _hash_file(path, size)
        files[rel.as_posix()] = LocalFile(rel.as_posix(), path, size, sha256, sha1)
    if "README.md" not in files:
        raise InputError(folder, "has no README.md dataset card; rebuild the folder with `chatdata build`")
    if not any(p.endswith(".parquet") for p in files):
        raise InputError(folder, "has no .parquet data files, nothing to publish; rebuild it with `chatdata build`")
    _check_card(folder / "README.md", list(files))
    return files


#: front matter: from a first line '---' to the next line that is exactly '---' (as huggingface_hub reads it)
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*$", re.DOTALL | re.MULTILINE)


def card_front_matter(readme: Path) -> dict[str, Any]:
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    match = FRONT_MATTER.match(text)
    if match is None:
        raise InputError(readme, "YAML front matter is not closed by a '---' line; rebuild the card")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise InputError(readme, f"invalid YAML front matter ({one_line(exc, limit=120)}); rebuild the card") from exc
    if not isinstance(meta, dict):
        raise InputError(readme, "YAML front matter must be a mapping; rebuild the card")
    return meta


def _check_card(readme: Path, paths: list[str]) -> None:
    """Every ``configs[].data_files`` pattern of the card must match at least one file of the folder."""
    for config in card_front_matter(readme).get("configs") or []:
        if not isinstance(config, dict):
            raise InputError(readme, "`configs` entries must be mappings with config_name and data_files")
        name = config.get("config_name", "default")
        data_files = config.get("data_files") or []
        if isinstance(data_files, (str, dict)):
            data_files = [data_files]
        for entry in data_files:
            split, patterns = (
                (entry.get("split", "train"), entry.get("path")) if isinstance(entry, dict) else ("train", entry)
            )
            for pattern in [patterns] if isinstance(patterns, str) else list(patterns or []):
                if not any(fnmatch.fnmatchcase(p, pattern) for p in paths):
                    raise InputError(
                        readme,
                        f"config {name!r} split {split!r} points at {pattern!r}, which matches no file in "
                        "the folder; rebuild the folder with `chatdata build`",
                    )
