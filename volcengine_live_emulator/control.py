"""The unauthenticated control API under ``/_emulator/``: the Python controls, over HTTP, for an
emulator started from the command line. JSON in, JSON out.

====== =============================== ==================================================
GET    /_emulator/health               ``{"ok": true}``
GET    /_emulator/stats                counters, task count, clock, config
DELETE /_emulator/stats                zero the counters
GET    /_emulator/config               latency, latency_jitter, rate_limit, retry_after
POST   /_emulator/config               change any of those (``rate_limit: null`` = off);
                                       ``credentials: {AK: SK}``, ``session_tokens: {AK: T}``
GET    /_emulator/faults               pending faults
POST   /_emulator/faults               queue one (``{"kind": ..., "times": ..}`` or
                                       ``{"spec": "kind:k=v"}``) or a list of them
DELETE /_emulator/faults               drop pending faults
GET    /_emulator/tasks                every task, newest first, as JSON lines (streamed)
POST   /_emulator/tasks[?raw=1]        create one task (object) or several (list)
GET    /_emulator/tasks/{TaskId}       one task
PATCH  /_emulator/tasks/{TaskId}       update fields (``"_remove": [names]`` drops fields)
DELETE /_emulator/tasks/{TaskId}       delete
POST   /_emulator/advance              ``{"now": RFC 3339 | epoch seconds | null}``
POST   /_emulator/remove               take tasks out of the list, restorable:
                                       ``{"task_ids": [...]}`` or ``{"oldest": N}``
POST   /_emulator/restore              put them back: ``{"task_ids": [...] | null}``
GET    /_emulator/removed              ``{"task_ids": [...], "count": N}``
POST   /_emulator/grow                 ``{"per_second": R, "per_request": N,
                                       "start_ahead": 60, "duration": 3600, "limit": N}``
POST   /_emulator/shrink               ``{"per_second": R, "per_request": N, "limit": N}``
GET    /_emulator/flows                running grow/shrink flows and what they did
DELETE /_emulator/flows                stop them
POST   /_emulator/reshuffle            ``{"seed": N | null}``: a new ``random`` order
====== =============================== ==================================================

``POST /_emulator/config`` also takes ``list_order`` (one of ``LIST_ORDERS``) with an optional
``order_seed``, ``key_rate_limits: {AK: R | "none" | null}`` (a limit of the key's own,
unlimited, or back to the default), ``accounts: {AK: ACCOUNT | null}`` (keys sharing one
window), ``verify_signatures: bool`` and ``prerender: PAGE_SIZE | null``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .answers import Response
from .api import ApiService
from .data import parse_rfc3339
from .store import REMOVE

PREFIX = "/_emulator"

Query = dict[str, list[str]]
Route = Callable[[str, Query, Any], Response | None]
"""A control route: ``(method, query, payload)`` to an answer, or None for a method it does
not take."""


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value, ensure_ascii=False).encode())


class ControlApi:
    """Routes control requests to the emulator's store, faults, stats and settings."""

    def __init__(self, service: ApiService) -> None:
        self.service = service
        self._routes: dict[str, Route] = {
            "/health": self._health,
            "/stats": self._stats,
            "/config": self._config_route,
            "/faults": self._faults,
            "/advance": self._advance,
            "/tasks": self._tasks,
            "/remove": self._remove,
            "/restore": self._restore,
            "/removed": self._removed,
            "/grow": self._grow,
            "/shrink": self._shrink,
            "/flows": self._flows,
            "/reshuffle": self._reshuffle,
        }

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        parts = urlsplit(target)
        path = parts.path[len(PREFIX) :].rstrip("/") or "/"
        query = parse_qs(parts.query)
        try:
            payload = json.loads(body) if body.strip() else None
        except ValueError:
            return _json({"error": "the body is not JSON"}, 400)
        try:
            return self._route(method, path, query, payload)
        except ControlError as exc:
            return _json({"error": str(exc)}, exc.status)
        except KeyError as exc:
            return _json({"error": f"no task with TaskId {exc.args[0]!r}"}, 404)
        except (ValueError, TypeError, IndexError) as exc:
            return _json({"error": str(exc)}, 400)

    def _route(self, method: str, path: str, query: Query, payload: Any) -> Response:
        route = self._routes.get(path)
        answer = None if route is None else route(method, query, payload)
        if answer is None and path.startswith("/tasks/"):
            answer = self._task(method, unquote(path[len("/tasks/") :]), payload)
        if answer is None:
            raise ControlError(404, f"no control route {method} {PREFIX}{path}")
        return answer

    # Each route answers, or returns None for a method it does not take (a 404).

    def _health(self, method: str, query: Query, payload: Any) -> Response | None:
        return _json({"ok": True})

    def _stats(self, method: str, query: Query, payload: Any) -> Response | None:
        service = self.service
        if method == "DELETE":
            service.stats.reset()
            return _json({"ok": True})
        return _json(
            {
                **service.stats.snapshot(),
                "count": service.store.count,
                "clock": service.store.clock,
                "pending_faults": len(service.faults),
                "config": self._config(),
            }
        )

    def _config_route(self, method: str, query: Query, payload: Any) -> Response | None:
        if method in ("POST", "PATCH", "PUT"):
            self._configure(_object(payload))
        return _json(self._config())

    def _faults(self, method: str, query: Query, payload: Any) -> Response | None:
        faults = self.service.faults
        if method == "DELETE":
            faults.clear()
            return _json({"ok": True})
        if method == "POST":
            items = payload if isinstance(payload, list) else [_object(payload)]
            added = [faults.add_dict(_object(item)).to_dict() for item in items]
            return _json(added if isinstance(payload, list) else added[0], 201)
        return _json([fault.to_dict() for fault in faults.pending()])

    def _advance(self, method: str, query: Query, payload: Any) -> Response | None:
        if method != "POST":
            return None
        store = self.service.store
        now = (payload or {}).get("now") if isinstance(payload, dict) else None
        store.advance(_moment(now))
        return _json({"ok": True, "clock": store.clock, "count": store.count})

    def _tasks(self, method: str, query: Query, payload: Any) -> Response | None:
        store = self.service.store
        if method == "POST":
            raw = query.get("raw", ["0"])[-1].lower() in ("1", "true", "yes")
            if isinstance(payload, list):
                made = [store.create_task(_object(item), raw=raw) for item in payload]
                return _json(made, 201)
            return _json(store.create_task(_object(payload), raw=raw), 201)
        if method == "GET":
            return Response(200, content_type="application/x-ndjson", chunks=_lines(store))
        return None

    def _remove(self, method: str, query: Query, payload: Any) -> Response | None:
        if method != "POST":
            return None
        store = self.service.store
        values = _object(payload)
        if "oldest" in values:
            removed = store.remove_oldest(int(values["oldest"]))
        else:
            removed = store.remove_tasks(_strings(values.get("task_ids")))
        return _json({"removed": removed, "count": store.count})

    def _restore(self, method: str, query: Query, payload: Any) -> Response | None:
        if method != "POST":
            return None
        store = self.service.store
        values = _object(payload) if payload is not None else {}
        ids = values.get("task_ids")
        restored = store.restore_tasks(None if ids is None else _strings(ids))
        return _json({"restored": restored, "count": store.count})

    def _removed(self, method: str, query: Query, payload: Any) -> Response | None:
        if method != "GET":
            return None
        store = self.service.store
        return _json({"task_ids": store.removed_task_ids(), "count": store.removed_count})

    def _grow(self, method: str, query: Query, payload: Any) -> Response | None:
        return self._flow(method, payload, grow=True)

    def _shrink(self, method: str, query: Query, payload: Any) -> Response | None:
        return self._flow(method, payload, grow=False)

    def _flow(self, method: str, payload: Any, *, grow: bool) -> Response | None:
        if method != "POST":
            return None
        store = self.service.store
        values = _object(payload)
        allowed = {"per_second", "per_request", "limit"}
        if grow:
            allowed |= {"start_ahead", "duration"}
        unknown = set(values) - allowed
        if unknown:
            raise ControlError(400, f"unknown key(s): {sorted(unknown)}")
        if grow:
            store.grow(**values)
        else:
            store.shrink(**values)
        return _json(store.flows(), 201)

    def _flows(self, method: str, query: Query, payload: Any) -> Response | None:
        store = self.service.store
        if method == "DELETE":
            return _json(store.stop_flows())
        return _json(store.flows())

    def _reshuffle(self, method: str, query: Query, payload: Any) -> Response | None:
        if method != "POST":
            return None
        store = self.service.store
        seed = (payload or {}).get("seed") if isinstance(payload, dict) else None
        store.reshuffle(None if seed is None else int(seed))
        return _json({"ok": True, "list_order": store.list_order})

    def _task(self, method: str, task_id: str, payload: Any) -> Response | None:
        store = self.service.store
        if method == "GET":
            task = store.get_task(task_id)
            if task is None:
                raise KeyError(task_id)
            return _json(task)
        if method in ("PATCH", "POST", "PUT"):
            fields = dict(_object(payload))
            for name in fields.pop("_remove", None) or []:
                fields[name] = REMOVE
            return _json(store.update_task(task_id, **fields))
        if method == "DELETE":
            return _json(store.delete_task(task_id))
        return None

    def _config(self) -> dict[str, Any]:
        settings = self.service.settings
        return {
            "latency": settings.latency,
            "latency_jitter": settings.latency_jitter,
            "rate_limit": self.service.limiter.rate,
            "retry_after": settings.retry_after,
            "region": settings.region,
            "access_key_ids": sorted(self.service.keyring.secrets),
            "list_order": self.service.store.list_order,
            "key_rate_limits": self.service.limiter.key_rates,
            "accounts": self.service.limiter.accounts,
            "verify_signatures": settings.verify_signatures,
            "prerender": self.service.store.prerender_size,
        }

    def _configure(self, values: dict[str, Any]) -> None:
        service = self.service
        settings = service.settings
        known = {
            "latency",
            "latency_jitter",
            "rate_limit",
            "retry_after",
            "credentials",
            "session_tokens",
            "list_order",
            "order_seed",
            "key_rate_limits",
            "accounts",
            "verify_signatures",
            "prerender",
        }
        unknown = set(values) - known
        if unknown:
            raise ControlError(400, f"unknown config key(s): {sorted(unknown)}")
        if "latency" in values:
            settings.latency = float(values["latency"] or 0.0)
        if "latency_jitter" in values:
            settings.latency_jitter = float(values["latency_jitter"] or 0.0)
        if "rate_limit" in values:
            rate = values["rate_limit"]
            service.limiter.rate = None if rate is None else float(rate)
        if "retry_after" in values:
            value = values["retry_after"]
            settings.retry_after = None if value is None else float(value)
        if "list_order" in values or "order_seed" in values:
            seed = values.get("order_seed")
            service.store.set_list_order(
                values.get("list_order") or service.store.list_order,
                seed=None if seed is None else int(seed),
            )
        for name, rate in (values.get("key_rate_limits") or {}).items():
            if rate is None:
                service.limiter.clear_key_rate(name)
            elif isinstance(rate, str) and rate.lower() in ("none", "off", "unlimited"):
                service.limiter.set_key_rate(name, None)
            else:
                service.limiter.set_key_rate(name, float(rate))
        for access_key_id, account in (values.get("accounts") or {}).items():
            service.limiter.set_account(access_key_id, account)
        if "verify_signatures" in values:
            settings.verify_signatures = bool(values["verify_signatures"])
        if "prerender" in values:
            size = values["prerender"]
            service.store.prerender(None if size is None else int(size))
        tokens = values.get("session_tokens") or {}
        for access_key_id, secret in (values.get("credentials") or {}).items():
            service.keyring.add(access_key_id, secret, tokens.get(access_key_id))


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ControlError(400, "expected a JSON object")
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ControlError(400, "task_ids must be a list of TaskId strings")
    return value


def _moment(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise ControlError(400, f"'now' must be RFC 3339 or epoch seconds, got {value!r}")
    return parsed


def _lines(store: Any) -> Iterator[bytes]:
    # Batch lines into ~64 KB chunks: one write per row would dominate a million-row dump.
    batch: list[bytes] = []
    size = 0
    for fragment in store.iter_fragments():
        batch.append(fragment)
        size += len(fragment) + 1
        if size >= 65536:
            yield b"\n".join(batch) + b"\n"
            batch, size = [], 0
    if batch:
        yield b"\n".join(batch) + b"\n"
