"""Hugging Face Hub I/O: publish a built dataset folder atomically, download a pinned source snapshot."""

from chatdata.hub.client import HubAuthError, HubError, validate_repo_id
from chatdata.hub.guard import PublishRefused, Verdict
from chatdata.hub.publish import FileChange, PublishResult, publish_folder
from chatdata.hub.source import download_source

__all__ = [
    "FileChange",
    "HubAuthError",
    "HubError",
    "PublishRefused",
    "PublishResult",
    "Verdict",
    "download_source",
    "publish_folder",
    "validate_repo_id",
]
