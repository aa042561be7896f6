"""Read JSON Lines and JSON-array files, gzip-compressed or not, one record at a time with bounded memory.

A UTF-8 byte-order mark at the start of a file is dropped. A file that cannot be opened or decompressed, and a
JSON array that is not valid JSON, raise :class:`~chatdata.errors.InputError` (one line); a bad *line* of a JSON
Lines file is the reader's to reject.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from chatdata.errors import InputError

BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
#: characters read per refill of a JSON array's buffer
CHUNK_CHARS = 1 << 20
_WS = re.compile(r"[ \t\n\r]*")


def head(path: Path, n: int = 4) -> bytes:
    """The first ``n`` bytes of the file as stored (b"" when it cannot be read)."""
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def is_gzip(path: Path) -> bool:
    """True when the name ends in ``.gz`` or the bytes start with the gzip magic number."""
    return path.name.lower().endswith(".gz") or head(path, 2) == GZIP_MAGIC


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")  # type: ignore[return-value]


def _unreadable(name: str, exc: BaseException) -> InputError:
    return InputError(name, f"cannot read file ({exc}); is it a complete (gzip) JSON file?")


def open_lines(path: Path, name: str) -> Iterator[tuple[int, bytes]]:
    """Every line with its 1-based number (blank lines included, the BOM of line 1 removed)."""
    try:
        with _open(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                yield lineno, (raw[len(BOM) :] if lineno == 1 and raw.startswith(BOM) else raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _unreadable(name, exc) from None


def first_char(path: Path, name: str) -> str:
    """The first character of the (decompressed) text that is not whitespace or a BOM; "" for none."""
    try:
        with _open(path) as fh:
            while chunk := fh.read(1 << 16):
                text = chunk.lstrip(b" \t\r\n").removeprefix(BOM).lstrip(b" \t\r\n")
                if text:
                    return chr(text[0])
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _unreadable(name, exc) from None
    return ""


def iter_array(path: Path, name: str) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array with their 1-based index, decoded one at a time.

    Memory holds one chunk of text plus the element being decoded. Invalid JSON raises :class:`InputError` naming
    the element: after a syntax error the rest of an array cannot be told apart into records."""
    decoder = json.JSONDecoder()
    try:
        with _open(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig") as fh:
            buf, pos, eof = "", 0, False

            def fill() -> None:
                nonlocal buf, pos, eof
                chunk = fh.read(CHUNK_CHARS)
                eof = not chunk
                buf, pos = buf[pos:] + chunk, 0

            def skip_ws() -> str:
                """The next non-whitespace character ("" at the end of the file)."""
                nonlocal pos
                while True:
                    pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]
                    if pos < len(buf) or eof:
                        return buf[pos] if pos < len(buf) else ""
                    fill()

            fill()
            if skip_ws() != "[":
                raise InputError(name, "not a JSON array (expected '[' first)")
            pos += 1
            index = 0
            if skip_ws() == "]":
                pos += 1
            else:
                while True:
                    try:
                        value, end = decoder.raw_decode(buf, pos)
                        if end == len(buf) and not eof:
                            raise json.JSONDecodeError("element reaches the end of the buffer", buf, end)
                    except json.JSONDecodeError as exc:
                        if eof:
                            raise InputError(name, f"invalid JSON in element {index + 1}: {exc.msg}") from None
                        fill()
                        continue
                    index += 1
                    pos = end
                    yield index, value
                    sep = skip_ws()
                    pos += 1
                    if sep == "]":
                        break
                    if sep != ",":
                        raise InputError(name, f"invalid JSON after element {index}: expected ',' or ']'")
                    skip_ws()
            if skip_ws() != "":
                raise InputError(name, "invalid JSON: text after the closing ']'")
    except UnicodeDecodeError as exc:
        raise InputError(name, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _unreadable(name, exc) from None
