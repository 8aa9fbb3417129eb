"""Fault injection: what the next requests (or one page, or a random share) go through.

A fault is a *kind* (what goes wrong) plus a *target* (which requests it hits):

* ``times=N`` — the next N requests that match (``None`` = every matching request);
* ``page=P`` — only requests for PageNum P;
* ``probability=p`` — each matching request draws from a seeded RNG, so runs repeat.

Faults are checked in the order they were added; the first that matches and draws fires.
Only well-formed, authenticated ListPullRecordTask requests reach the fault queue: signature,
rate-limit and validation errors come first, as they would at the real gateway.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from .errors import KNOWN_ERRORS

# kind -> (error code, HTTP status) for the kinds that are plain error envelopes.
ENVELOPE_KINDS: dict[str, str] = {
    "common_err": "CommonErr",
    "internal_error": "InternalError",
    "internal_service_error": "InternalServiceError",
    "bad_response": "InternalServiceError.BadResponse",
    "service_timeout": "InternalServiceTimeout",
    "unavailable": "ServiceUnavailableTemp",
    "flow_limit": "FlowLimitExceeded",
    "access_denied": "AccessDenied",
    "billing": "RequestForbidden.BillingStatus",
}

OTHER_KINDS: dict[str, str] = {
    "error": "any error envelope: code=..., status=..., code_n=..., message=...",
    "stall": "wait `seconds` (default 30) before answering, so a client read timeout fires",
    "reset": "close the connection without a response (RST via SO_LINGER 0)",
    "truncated": "announce the full Content-Length, send half the body, close",
    "drip": "the page at one byte per `interval` seconds (default 1): no read ever times out",
    "bomb": "the page gzip-compressed with `size` bytes (default 1 GiB) of spaces inside: "
    "valid JSON, about a thousandth of that on the wire",
    "html_502": "a proxy's HTML 502 Bad Gateway page",
    "non_json": "HTTP 200 (or `status`) with a body that is not JSON (or `body`)",
    "empty_body": "HTTP 200 with an empty body",
    "missing_result": "HTTP 200 JSON with ResponseMetadata only: no Result, no Error",
    "list_not_list": "HTTP 200 with Result.List set to `value` (default {}) instead of a list",
    "missing_pagination": "HTTP 200 with Result.List but no Result.Pagination",
}

FAULT_KINDS: tuple[str, ...] = (*ENVELOPE_KINDS, *OTHER_KINDS)
"""Every fault kind :meth:`FaultQueue.add` accepts."""

_PARAMS = {
    *("seconds", "code", "status", "code_n", "message", "retry_after", "body", "value"),
    *("interval", "size"),
}


@dataclass
class Fault:
    """One queued fault. ``remaining`` is None for an unlimited fault."""

    kind: str
    remaining: int | None = 1
    page: int | None = None
    probability: float | None = None
    seconds: float = 30.0
    code: str | None = None
    status: int | None = None
    code_n: int | None = None
    message: str | None = None
    retry_after: float | None = None
    body: str | None = None
    value: Any = None
    interval: float = 1.0
    size: int = 1 << 30
    fired: int = 0
    id: int = 0

    def envelope(self) -> tuple[str, int, int | None, str | None]:
        """``(code, status, code_n, message)`` for the kinds that answer with an envelope."""
        code = self.code or ENVELOPE_KINDS.get(self.kind) or "InternalError"
        spec = KNOWN_ERRORS.get(code)
        status = self.status if self.status is not None else (spec.status if spec else 500)
        code_n = self.code_n if self.code_n is not None else (spec.code_n if spec else None)
        return code, status, code_n, self.message

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


class FaultQueue:
    """Thread-safe queue of faults, consulted once per page request. ``fired`` counts the
    faults that went off, by kind."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.fired: Counter[str] = Counter()
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._rng = random.Random(f"faults-{seed}")

    def add(
        self,
        kind: str,
        times: int | None = 1,
        page: int | None = None,
        probability: float | None = None,
        **params: Any,
    ) -> Fault:
        """Queue a fault of ``kind`` (see :data:`FAULT_KINDS`) and return it.

        ``times``: how many matching requests it hits (None = all of them; for a steady
        failure rate combine ``probability=0.1, times=None``). ``page``: only requests for that
        PageNum. ``probability``: each matching request fires with this chance (seeded).
        Kind parameters: ``seconds`` (stall), ``code``/``status``/``code_n``/``message``
        (error, or to override any envelope kind), ``retry_after`` (flow_limit: send a
        Retry-After header), ``body`` (non_json), ``value`` (list_not_list), ``interval``
        (drip: seconds per byte), ``size`` (bomb: bytes once inflated).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        unknown = set(params) - _PARAMS
        if unknown:
            raise ValueError(f"unknown fault parameter(s) {sorted(unknown)} for {kind!r}")
        if kind == "error" and not params.get("code"):
            raise ValueError("fault kind 'error' needs code=..., e.g. code='AccessDenied'")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for unlimited")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if params.get("interval", 1.0) <= 0 or params.get("size", 1) < 1:
            raise ValueError("interval (drip) and size (bomb) must be positive")
        fault = Fault(kind=kind, remaining=times, page=page, probability=probability, **params)
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        return fault

    def add_spec(self, spec: str) -> Fault:
        """Queue a fault written as ``kind[:key=value,...]``, the command line's syntax, e.g.
        ``common_err:times=3``, ``stall:seconds=5,page=2``, ``error:code=AccessDenied``,
        ``internal_error:probability=0.05,times=none``."""
        kind, _, rest = spec.strip().partition(":")
        options: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"fault option {item!r} is not key=value (in {spec!r})")
            options[key.strip()] = _parse_value(raw.strip())
        return self.add(kind.strip(), **options)

    def add_dict(self, values: dict[str, Any]) -> Fault:
        """Queue a fault given as a JSON object (the control API's form)."""
        values = dict(values)
        if "spec" in values:
            return self.add_spec(str(values["spec"]))
        kind = values.pop("kind", None)
        if not isinstance(kind, str):
            raise ValueError("a fault needs a 'kind'")
        return self.add(kind, **values)

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self.seed = seed
            self._rng = random.Random(f"faults-{seed}")

    def pending(self) -> list[Fault]:
        """The faults still queued, in order."""
        with self._lock:
            return list(self._faults)

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def take(self, page_num: int | None) -> Fault | None:
        """The fault that hits this request, if any (its count is used up)."""
        with self._lock:
            for fault in self._faults:
                if fault.page is not None and fault.page != page_num:
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                fault.fired += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                self.fired[fault.kind] += 1
                return fault
            return None


def _parse_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("none", "null", "inf", "unlimited"):
        return None
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    if raw.startswith(("{", "[", '"')):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw
