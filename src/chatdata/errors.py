"""User-facing errors: one clear line that says what is wrong and what to do."""

from __future__ import annotations


class ChatdataError(Exception):
    """An error the CLI prints as one line (no traceback). Say what happened and what to do."""


class InputError(ChatdataError):
    """An input file or source cannot be read at all."""

    def __init__(self, path: object, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class SpecError(ChatdataError):
    """A declarative spec (filter YAML, recipe, phrase list) is invalid."""
