"""Hugging Face Hub I/O: publish a built dataset folder atomically, download a pinned source snapshot."""
