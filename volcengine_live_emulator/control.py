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
====== =============================== ==================================================
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .api import ApiService, Response
from .data import parse_rfc3339
from .store import REMOVE

PREFIX = "/_emulator"


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

    def _route(self, method: str, path: str, query: dict[str, list[str]], payload: Any) -> Response:
        service = self.service
        store = service.store
        if path == "/health":
            return _json({"ok": True})
        if path == "/stats":
            if method == "DELETE":
                service.stats.reset()
                return _json({"ok": True})
            return _json(
                {
                    **service.stats.snapshot(),
                    "count": store.count,
                    "clock": store.clock,
                    "pending_faults": len(service.faults),
                    "config": self._config(),
                }
            )
        if path == "/config":
            if method in ("POST", "PATCH", "PUT"):
                self._configure(_object(payload))
            return _json(self._config())
        if path == "/faults":
            if method == "DELETE":
                service.faults.clear()
                return _json({"ok": True})
            if method == "POST":
                items = payload if isinstance(payload, list) else [_object(payload)]
                added = [service.faults.add_dict(_object(item)).to_dict() for item in items]
                return _json(added if isinstance(payload, list) else added[0], 201)
            return _json([fault.to_dict() for fault in service.faults.pending()])
        if path == "/advance" and method == "POST":
            now = (payload or {}).get("now") if isinstance(payload, dict) else None
            store.advance(_moment(now))
            return _json({"ok": True, "clock": store.clock, "count": store.count})
        if path == "/tasks":
            if method == "POST":
                raw = query.get("raw", ["0"])[-1].lower() in ("1", "true", "yes")
                if isinstance(payload, list):
                    made = [store.create_task(_object(item), raw=raw) for item in payload]
                    return _json(made, 201)
                return _json(store.create_task(_object(payload), raw=raw), 201)
            if method == "GET":
                return Response(200, content_type="application/x-ndjson", chunks=_lines(store))
        if path.startswith("/tasks/"):
            task_id = unquote(path[len("/tasks/") :])
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
        raise ControlError(404, f"no control route {method} {PREFIX}{path}")

    def _config(self) -> dict[str, Any]:
        settings = self.service.settings
        return {
            "latency": settings.latency,
            "latency_jitter": settings.latency_jitter,
            "rate_limit": self.service.limiter.rate,
            "retry_after": settings.retry_after,
            "region": settings.region,
            "access_key_ids": sorted(self.service.keyring.secrets),
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
        tokens = values.get("session_tokens") or {}
        for access_key_id, secret in (values.get("credentials") or {}).items():
            service.keyring.add(access_key_id, secret, tokens.get(access_key_id))


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ControlError(400, "expected a JSON object")
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
