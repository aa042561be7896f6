"""Every source format: the ``FORMAT`` of each module of :mod:`chatdata.sources.formats`, found by listing the
package. The format names, the families (a recipe source's ``format``) and what each is read into are derived
from them here, and from nowhere else."""

from __future__ import annotations

import importlib
import pkgutil

from chatdata.errors import ChatdataError
from chatdata.sources import formats
from chatdata.sources.formats import Format


def _declared() -> dict[str, Format]:
    """The formats in detection order (:attr:`Format.precedence`, then name); each is named after its module and
    every format of a family fills the same table."""
    found: list[Format] = []
    for module in pkgutil.iter_modules(formats.__path__):
        declared = importlib.import_module(f"{formats.__name__}.{module.name}").FORMAT
        if declared.name != module.name:
            raise RuntimeError(f"{formats.__name__}.{module.name} declares format {declared.name!r}")
        found.append(declared)
    tables = {(f.family, f.table) for f in found}
    if len(tables) != len({family for family, _ in tables}):
        raise RuntimeError(f"a family's formats fill different tables: {sorted(tables)}")
    return {f.name: f for f in sorted(found, key=lambda f: (f.precedence, f.name))}


#: format name -> its declaration, in detection order
FORMATS = _declared()
#: the families, the ``format`` a recipe source names
KINDS = tuple(sorted({f.family for f in FORMATS.values()}))


def of_kind(kind: str) -> list[str]:
    """The formats of a family, in detection order."""
    return [name for name, f in FORMATS.items() if f.family == kind]


def check_format(fmt: str | None) -> None:
    """Raise a one-line error for a format override that names no known format."""
    if fmt is not None and fmt not in FORMATS:
        raise ChatdataError(f"unknown format {fmt!r}; use one of {', '.join(sorted(FORMATS))}")


def check_kind(kind: str | None) -> None:
    """Raise a one-line error for a source kind that names no known family."""
    if kind is not None and kind not in KINDS:
        raise ChatdataError(f"unknown source kind {kind!r}; use one of {', '.join(KINDS)}")
