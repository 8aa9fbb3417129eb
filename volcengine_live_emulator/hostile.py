"""Hostile data: records a real list can hold that the API's documentation never promises.

The data half of the emulator's hostile-server mode (network faults are in ``faults.py``).
:func:`make_hostile` changes a store's list so that it

* lists some TaskIds twice, on two pages: a copy of an older task stands at the head of the
  list (page 1, newest first) while the original keeps its place further down;
* gives some tasks fields the API does not document, among them fields whose snake_case
  names are the loader's own columns (``DeletedAt`` with a time, ``Account``, ``SeenAt``,
  ``DataIssues``, ``StatusCode``), a nested object and a name made of punctuation;
* gives some tasks times no database or chart can hold (``0001-01-01T00:00:00Z``,
  ``9999-12-31T23:59:59+08:00``);
* adds tasks whose TaskId holds a NUL byte.

Everything goes through the store's public methods, so the list stays an ordinary list that
tests can change further; the choice of tasks is seeded. It returns the TaskIds it touched,
by kind, so a test can look for exactly those.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, fields
from typing import Any, Final

from .store import TaskStore

ODD_TIMES: Final = (
    ("StartTime", "0001-01-01T00:00:00Z"),
    ("EndTime", "9999-12-31T23:59:59+08:00"),
    ("StartTime", "9999-12-31T23:59:59+08:00"),
    ("EndTime", "0001-01-01T00:00:00Z"),
)
"""Field and value, taken in turn: the first and last instants RFC 3339 can write."""

EXTRA_FIELDS: Final[tuple[dict[str, Any], ...]] = (
    {"DeletedAt": "2024-01-01T00:00:00Z", "RecordFormat": "flv"},
    {"Account": "someone-else", "SeenAt": "yes"},
    {"DataIssues": None, "StatusCode": 3, "Extra": {"nested": [1, "two", None]}},
    {"DeletedAt": "yes", "!!": True},
)
"""Field sets given in turn to the tasks chosen: names that collide with the loader's own
columns (snake_case of ``DeletedAt`` is ``deleted_at``), values of every JSON type."""


@dataclass(frozen=True)
class HostileData:
    """How many tasks get each kind of hostile data (0: none)."""

    listed_twice: int = 0
    extra_fields: int = 0
    odd_times: int = 0
    nul_task_ids: int = 0
    seed: int = 0

    @classmethod
    def parse(cls, spec: str) -> HostileData:
        """``listed_twice=3,extra_fields=4,odd_times=2,nul_task_ids=1,seed=5``; a bare kind
        means 1 of it. Raises ``ValueError`` naming what it does not know."""
        known = {f.name for f in fields(cls)}
        values: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, count = part.partition("=")
            name = name.strip().replace("-", "_")
            if name not in known:
                raise ValueError(
                    f"unknown hostile data {name!r}; one of {', '.join(sorted(known))}"
                )
            try:
                values[name] = int(count) if count else 1
            except ValueError:
                raise ValueError(f"{name}: {count!r} is not a whole number") from None
            if values[name] < 0:
                raise ValueError(f"{name} must be 0 or more")
        return cls(**values)


def make_hostile(store: TaskStore, hostile: HostileData) -> dict[str, list[str]]:
    """Change ``store``'s list as ``hostile`` says; return the TaskIds touched, by kind
    (``listed_twice``, ``extra_fields``, ``odd_times``, ``nul_task_ids``)."""
    rng = random.Random(f"hostile-{hostile.seed}")
    chosen = spread_task_ids(store, hostile.listed_twice + hostile.extra_fields + hostile.odd_times)
    rng.shuffle(chosen)
    twice = chosen[: hostile.listed_twice]
    extra = chosen[len(twice) : len(twice) + hostile.extra_fields]
    odd = chosen[len(twice) + len(extra) :]
    for number, task_id in enumerate(extra):
        store.update_task(task_id, **EXTRA_FIELDS[number % len(EXTRA_FIELDS)])
    for number, task_id in enumerate(odd):
        name, value = ODD_TIMES[number % len(ODD_TIMES)]
        store.update_task(task_id, **{name: value})
    for task_id in twice:  # after the changes, so that a copy shows them too
        list_twice(store, task_id)
    nul_ids = [
        str(store.create_task(TaskId=f"nul\x00{rng.getrandbits(64):016x}")["TaskId"])
        for _ in range(hostile.nul_task_ids)
    ]
    return {"listed_twice": twice, "extra_fields": extra, "odd_times": odd, "nul_task_ids": nul_ids}


def list_twice(store: TaskStore, task_id: str) -> dict[str, Any]:
    """List the task ``task_id`` a second time, as the newest task (page 1), the original
    staying where it is; returns the copy. Changes through ``update_task`` then reach the
    copy only (the newest of a TaskId), as a real list listing a task twice might do."""
    record = store.get_task(task_id)
    if record is None:
        raise KeyError(task_id)
    return store.create_task(record, raw=True)


def spread_task_ids(store: TaskStore, count: int) -> list[str]:
    """``count`` distinct TaskIds at places spread evenly over the list, away from its head
    (where the copies of tasks listed twice go)."""
    total = store.count
    if count <= 0 or total == 0:
        return []
    found: list[str] = []
    for number in range(count):
        position = total - 1 - (number * total) // max(count, 1)
        rows, _ = store.page(position + 1, 1)
        task = store.get_task(_task_id_of(rows[0])) if rows else None
        if task is not None and task["TaskId"] not in found:
            found.append(str(task["TaskId"]))
    return found


def _task_id_of(fragment: bytes) -> str:
    value = json.loads(fragment).get("TaskId")
    return value if isinstance(value, str) else ""
