"""Server-side check of Volcengine ``HMAC-SHA256`` request signatures.

The canonical request is rebuilt from what was *received*: the header list the client names in
``SignedHeaders``, their received values (host without a default port), the received query and
the hash of the received body. The arithmetic is :mod:`volcengine_live_emulator.signing`
(standard library only), which the tests hold to the official SDK's signer.
"""

from __future__ import annotations

import hmac
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .errors import ApiFailure
from .signing import canonical_host, canonical_request, sha256_hex, signature

_AUTHORIZATION = re.compile(
    r"^HMAC-SHA256\s+Credential=(?P<ak>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/request,\s*SignedHeaders=(?P<signed>[^,\s]+),\s*"
    r"Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)

_X_DATE = re.compile(r"^\d{8}T\d{6}Z$")

DEFAULT_MAX_SKEW_SECONDS = 15 * 60
"""How far X-Date may be from the server clock, either way, before InvalidTimestamp."""


@dataclass
class Keyring:
    """The access keys the emulator accepts: AK → SK, and AK → session token for temporary
    (STS) keys. Thread-safe to change while serving."""

    secrets: dict[str, str] = field(default_factory=dict)
    session_tokens: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self, access_key_id: str, secret_access_key: str, session_token: str | None = None
    ) -> None:
        """Accept this key pair; with ``session_token`` it is an STS key that must send it."""
        with self._lock:
            self.secrets[access_key_id] = secret_access_key
            if session_token:
                self.session_tokens[access_key_id] = session_token
            else:
                self.session_tokens.pop(access_key_id, None)

    def remove(self, access_key_id: str) -> None:
        with self._lock:
            self.secrets.pop(access_key_id, None)
            self.session_tokens.pop(access_key_id, None)

    def lookup(self, access_key_id: str) -> tuple[str | None, str | None]:
        with self._lock:
            return self.secrets.get(access_key_id), self.session_tokens.get(access_key_id)


def parse_x_date(value: str) -> float | None:
    """Epoch seconds of an ``X-Date`` (``YYYYMMDDTHHMMSSZ``, UTC), or None if malformed."""
    if _X_DATE.match(value) is None:
        return None
    try:
        moment = datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    return moment.timestamp()


def claimed_access_key(headers: Mapping[str, str]) -> str:
    """The access key id an ``Authorization`` header names, unchecked (``""`` if none): what
    the rate limit counts when signature verification is off."""
    match = _AUTHORIZATION.match(headers.get("authorization") or "")
    return match["ak"] if match is not None else ""


def verify_request(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    keyring: Keyring,
    region: str,
    service: str,
    now: float,
    max_skew: float = DEFAULT_MAX_SKEW_SECONDS,
) -> str:
    """Check one request's signature and return its access key id.

    ``headers`` are keyed by lower-case name. Raises :class:`ApiFailure` with the code the
    real gateway uses: MissingAuthenticationToken, MissingRequestInfo, InvalidTimestamp,
    InvalidAccessKey, InvalidSecretToken or SignatureDoesNotMatch.
    """
    match = _authorization(headers)
    x_date = headers.get("x-date")
    if not x_date:
        raise ApiFailure("MissingRequestInfo")
    signed_at = parse_x_date(x_date)
    if signed_at is None or abs(now - signed_at) > max_skew:
        raise ApiFailure("InvalidTimestamp")

    access_key_id = match["ak"]
    secret, expected_token = keyring.lookup(access_key_id)
    if secret is None:
        raise ApiFailure("InvalidAccessKey", access_key_id=access_key_id)
    _check_session_token(headers.get("x-security-token"), expected_token)

    body_hash = sha256_hex(body)
    sent_hash = headers.get("x-content-sha256")
    if sent_hash is not None and not hmac.compare_digest(sent_hash.lower(), body_hash):
        raise ApiFailure(
            "SignatureDoesNotMatch",
            "X-Content-Sha256 does not match the SHA-256 of the request body.",
        )
    if match["date"] != x_date[:8] or match["region"] != region or match["service"] != service:
        raise ApiFailure(
            "SignatureDoesNotMatch",
            f"The credential scope {match['date']}/{match['region']}/{match['service']} does "
            f"not match {x_date[:8]}/{region}/{service}.",
        )
    signed_names = match["signed"].split(";")
    received = _signed_headers(headers, signed_names)
    canonical = canonical_request(method, path, query, received, signed_names, body_hash)
    expected = signature(secret, x_date, region, service, canonical)
    if not hmac.compare_digest(expected, match["signature"].lower()):
        raise ApiFailure("SignatureDoesNotMatch")
    return access_key_id


def _authorization(headers: Mapping[str, str]) -> re.Match[str]:
    # The parts of the Authorization header, or the gateway's error for its absence or shape.
    authorization = headers.get("authorization")
    if not authorization:
        raise ApiFailure("MissingAuthenticationToken")
    match = _AUTHORIZATION.match(authorization)
    if match is None:
        raise ApiFailure(
            "SignatureDoesNotMatch",
            "The Authorization header is malformed: expected 'HMAC-SHA256 Credential=AK/"
            "date/region/service/request, SignedHeaders=..., Signature=...'.",
        )
    return match


def _check_session_token(token: str | None, expected_token: str | None) -> None:
    # An STS key must send its token; a long-term key that sends one is wrong too.
    if token or expected_token:
        if not token:
            raise ApiFailure(
                "InvalidSecretToken", detail="this temporary key needs its session token"
            )
        if not hmac.compare_digest(token, expected_token or ""):
            raise ApiFailure("InvalidSecretToken", detail="the session token is not valid")


def _signed_headers(headers: Mapping[str, str], signed_names: list[str]) -> dict[str, str]:
    # The values of the headers the client says it signed, as received (Host canonical).
    received: dict[str, str] = {}
    for name in signed_names:
        value = headers.get(name)
        if value is None:
            raise ApiFailure(
                "SignatureDoesNotMatch", f"The signed header {name!r} is not in the request."
            )
        received[name] = canonical_host(value) if name == "host" else value
    return received
