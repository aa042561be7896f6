"""The CLI's progress callbacks for a flow run in this process.

Kept in a module of their own: Prefect pickles the flow function (by value) into every task's context for the
worker processes, and a module global of ``flows.build`` would travel with it; a module is pickled by name."""

from __future__ import annotations

from collections.abc import Callable

#: (on_phase(message), on_done(phase, label)) while ``flows.build.run_flow`` runs, else (None, None)
current: tuple[Callable[[str], None] | None, Callable[[str, str], None] | None] = (None, None)
#: on_note(line): lines for the user (the temporary server, the flow run and its link), else None
on_note: Callable[[str], None] | None = None
#: the debug log of a quiet run (``flows.build.quiet_prefect_logging``): worker processes log there too
log_file: str | None = None
