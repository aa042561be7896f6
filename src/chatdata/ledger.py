"""The ledger: per stage, rows in, rows out and rows rejected by reason. It must balance, stage by stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chatdata.errors import ChatdataError


class LedgerError(ChatdataError):
    """Counts do not balance: a bug, never a user error; the build stops before writing anything."""


@dataclass
class StageRecord:
    """One stage's counts. ``produced`` is set when a stage turns one unit into another (messages -> dialogues)."""

    stage: str
    unit: str
    rows_in: int
    rows_out: int
    rejected: dict[str, int] = field(default_factory=dict)
    produced: int | None = None
    produced_unit: str | None = None
    moved: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    #: the recipe's source this record counts (None: the whole mixture, e.g. the splits)
    source: str | None = None

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_out + self.n_rejected

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rejected"] = dict(sorted(self.rejected.items()))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageRecord:
        return cls(**d)

    @property
    def carried(self) -> int:
        """What the next stage starts with (the produced units when the stage turns one unit into another)."""
        return self.produced if self.produced is not None else self.rows_out


@dataclass
class Ledger:
    records: list[StageRecord] = field(default_factory=list)

    def add(self, record: StageRecord) -> None:
        self.records.append(record)

    def check(self) -> None:
        """Raise :class:`LedgerError` unless every stage balances and each stage starts where the last ended.

        Records of a source (``source`` set) form that source's chain; a record for the whole mixture
        (``source`` None) starts with what every source's chain carried, summed."""
        last: dict[str | None, StageRecord] = {}
        for r in self.records:
            if not r.balanced:
                raise LedgerError(
                    f"ledger does not balance at stage '{r.stage}': {r.rows_in} in != {r.rows_out} out + "
                    f"{r.n_rejected} rejected"
                )
            if r.source is None and any(k is not None for k in last):
                carried = sum(p.carried for k, p in last.items() if k is not None)
                name = "+".join(f"{k}:{p.stage}" for k, p in last.items() if k is not None)
                last = {}
            else:
                prev = last.get(r.source)
                carried, name = (prev.carried, prev.stage) if prev is not None else (r.rows_in, "")
            if carried != r.rows_in:
                raise LedgerError(f"stage '{r.stage}' starts with {r.rows_in} rows but '{name}' passed {carried}")
            last[r.source] = r

    def sources(self) -> list[str]:
        """The sources counted, in order of first appearance."""
        return list(dict.fromkeys(r.source for r in self.records if r.source is not None))

    def total_rejected(self) -> int:
        return sum(r.n_rejected for r in self.records)

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.records]
