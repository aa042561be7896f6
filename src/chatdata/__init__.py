"""chatdata: curation pipeline for chat fine-tuning data (OpenAssistant trees to StarChat-style datasets)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chatdata")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
