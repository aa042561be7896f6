"""Optional dependencies: what a plain ``pip install chatdata`` leaves out, and the one line that says which extra
brings it (``chatdata[dask]`` for a Dask cluster, ``chatdata[transformers]`` for tokenizers and chat templates)."""

from __future__ import annotations

import importlib
from types import ModuleType

from chatdata.errors import ChatdataError

#: module -> (the extra that installs it, the distribution it comes from)
EXTRAS: dict[str, tuple[str, str]] = {
    "transformers": ("transformers", "transformers"),
    "prefect_dask": ("dask", "prefect-dask"),
}


class MissingExtraError(ChatdataError):
    """A feature needs a package the installed extras do not bring."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install for ``feature``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but broken: its own error says more
        extra, dist = EXTRAS[module.split(".")[0]]
        raise MissingExtraError(
            f"{feature} needs {dist}, which a plain install leaves out: pip install 'chatdata[{extra}]'"
        ) from None
