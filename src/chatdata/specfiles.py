"""Read the YAML files chatdata is configured with (recipes, filter specs): one clear line on a syntax error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chatdata.errors import SpecError

#: libyaml's parser when PyYAML has it (ten times faster than the pure-Python one, same result)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    """The parsed file, or :class:`SpecError` with the file, the line and the problem."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
