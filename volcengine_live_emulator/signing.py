"""The Volcengine ``HMAC-SHA256`` ("V4") signing arithmetic, standard library only.

The emulator's own copy, so that it stands alone: it imports nothing from the source package
and needs no dlt. Its tests hold it to the official SDK (``volcengine.auth.SignerV4``): the
server accepts every request the SDK signs and refuses a wrong secret or a changed body.

Server side, :mod:`volcengine_live_emulator.signature` rebuilds the canonical request from what
was received with :func:`canonical_request` and compares :func:`signature`. Client side,
:func:`sign` returns the headers that sign one request (used by ``selfbench`` and the tests).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "HMAC-SHA256"
DEFAULT_REGION = "cn-north-1"
DEFAULT_SERVICE = "live"


def format_x_date(moment: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ`` in UTC; a naive datetime is taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _quote(value: str) -> str:
    # Unreserved characters stay; everything else (space included) is %XX of its UTF-8 bytes.
    return quote(value, safe="-_.~")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Keys sorted, repeated keys in their received order, RFC 3986 encoding."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return "&".join(
        f"{_quote(key)}={_quote(value)}" for key in sorted(grouped) for value in grouped[key]
    )


def canonical_path(path: str) -> str:
    return quote(path or "/").replace("%2F", "/")


def canonical_host(host: str) -> str:
    """The host as signed: a default port (80, 443) is dropped, any other port kept."""
    name, sep, port = host.rpartition(":")
    if sep and name and port in ("80", "443"):
        return name
    return host


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    body_sha256: str,
) -> str:
    """The canonical request over ``signed_headers`` (lower-case names) taken from ``headers``
    (keyed by lower-case name, host already canonical)."""
    names = sorted(signed_headers)
    header_lines = "".join(f"{name}:{headers[name]}\n" for name in names)
    return "\n".join(
        [
            method.upper(),
            canonical_path(path),
            canonical_query(query),
            header_lines,
            ";".join(names),
            body_sha256,
        ]
    )


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/request"


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    k_date = _hmac(secret_access_key.encode("utf-8"), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "request")


def signature(
    secret_access_key: str, x_date: str, region: str, service: str, canonical: str
) -> str:
    """Hex signature of a canonical request made at ``x_date``."""
    date = x_date[:8]
    to_sign = "\n".join(
        [
            ALGORITHM,
            x_date,
            credential_scope(date, region, service),
            sha256_hex(canonical.encode("utf-8")),
        ]
    )
    key = signing_key(secret_access_key, date, region, service)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    region: str = DEFAULT_REGION,
    service: str = DEFAULT_SERVICE,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers that sign one request: ``X-Date``, ``X-Content-Sha256``, ``Authorization``
    (and ``X-Security-Token`` with STS credentials). Signed are ``host`` (from ``url``),
    ``content-type`` / ``content-md5`` when ``headers`` has them and every ``X-*`` header,
    as the official SDK does."""
    x_date = format_x_date(now or datetime.now(timezone.utc))
    body_hash = sha256_hex(body)
    parts = urlsplit(url)
    added = {"X-Date": x_date, "X-Content-Sha256": body_hash}
    if session_token:
        added["X-Security-Token"] = session_token
    signable = {"host": canonical_host(parts.netloc)}
    for name, value in [*headers.items(), *added.items()]:
        lowered = name.lower()
        if lowered in ("content-type", "content-md5") or lowered.startswith("x-"):
            signable[lowered] = value
    canonical = canonical_request(
        method,
        parts.path or "/",
        parse_qsl(parts.query, keep_blank_values=True),
        signable,
        signable.keys(),
        body_hash,
    )
    sig = signature(secret_access_key, x_date, region, service, canonical)
    scope = credential_scope(x_date[:8], region, service)
    added["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(sorted(signable))}, Signature={sig}"
    )
    return added
