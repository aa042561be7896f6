"""Declarative, auditable filters: a batch score step and a separate decide step (see :mod:`.base`)."""

from chatdata.filters.base import REGISTRY, Filter, FilterOutcome, FilterSpec, apply_filters, register

__all__ = ["REGISTRY", "Filter", "FilterOutcome", "FilterSpec", "apply_filters", "register"]
