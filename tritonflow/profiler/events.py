"""Profiler stage: what one recording holds — timed events and their aggregation by key.

An event is one compiled call, one IR node run by the interpreter, or one kernel launch. Events
with the same key (the function; the graph and node index; the graph and kernel name) aggregate
into one row of `Profile.table()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cost:
    """Bytes moved and floating-point operations of one run of a node or kernel (None: unknown)."""

    bytes: int | None = None
    flops: int | None = None


@dataclass
class Event:
    kind: str               # "function" | "node" | "kernel"
    name: str               # the function, "op (graph #index)", or the kernel name
    key: tuple              # what rows aggregate by
    start_ns: int           # host clock, relative to the recording's start
    duration_ns: int        # host time; for a GPU kernel, the CUDA-event time once resolved
    device: str = "cpu"
    source: list = field(default_factory=list)   # the user's file:line entries the event comes from
    cost: Cost | None = None
    pending: tuple | None = None                 # (start, end) CUDA events not yet read


@dataclass
class Row:
    """Events of one key, added up."""

    kind: str
    name: str
    device: str
    source: list
    calls: int = 0
    total_ns: int = 0
    bytes: int | None = None
    flops: int | None = None

    def add(self, event: Event) -> None:
        self.calls += 1
        self.total_ns += event.duration_ns
        if event.cost is not None:
            if event.cost.bytes is not None:
                self.bytes = (self.bytes or 0) + event.cost.bytes
            if event.cost.flops is not None:
                self.flops = (self.flops or 0) + event.cost.flops


def aggregate(events: list, kind: str | None = None) -> list:
    """One Row per key (of `kind`, or of every kind), the longest total first."""
    rows: dict = {}
    for event in events:
        if kind is not None and event.kind != kind:
            continue
        row = rows.get(event.key)
        if row is None:
            row = rows[event.key] = Row(event.kind, event.name, event.device, list(event.source))
        row.add(event)
    return sorted(rows.values(), key=lambda r: r.total_ns, reverse=True)
