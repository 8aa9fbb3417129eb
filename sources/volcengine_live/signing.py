"""Volcengine OpenAPI request signing (``HMAC-SHA256``, the "V4" scheme).

The official SDK (``volcengine.auth.SignerV4``) is the reference: for the same request, time and
credentials the functions here produce a byte-identical ``Authorization`` header, which the test
suite checks against the SDK itself.

Two layers:

* pure functions (:func:`canonical_query`, :func:`canonical_request`, :func:`signature`,
  :func:`sign`) that know nothing about HTTP libraries; the emulator verifies requests with them;
* :class:`VolcengineSigner`, a ``requests`` auth object that signs the exact bytes a prepared
  request will send. ``requests`` applies auth every time a request is prepared, so a request
  that is retried through ``Session.request`` is signed afresh with a new ``X-Date``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, urlsplit

import requests

from .errors import ConfigurationError
from .settings import (
    DEFAULT_REGION,
    ENV_ACCESS_KEY,
    ENV_SECRET_KEY,
    ENV_SESSION_TOKEN,
    SECTION,
    where_to_fix,
)

logger = logging.getLogger(__name__)

ALGORITHM = "HMAC-SHA256"
DEFAULT_SERVICE = "live"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_x_date(moment: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ`` in UTC, as the ``X-Date`` header wants it."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _quote(value: str) -> str:
    # Unreserved characters stay, everything else (space included) is %XX of its UTF-8 bytes.
    return quote(value, safe="-_.~")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Canonical query string: keys sorted, repeated keys keep their order, RFC 3986 encoding."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    parts = [f"{_quote(key)}={_quote(value)}" for key in sorted(grouped) for value in grouped[key]]
    return "&".join(parts)


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
    """The canonical request for ``signed_headers`` (lower-case names) taken from ``headers``.

    ``headers`` must be keyed by lower-case name; the host value must already be canonical.
    """
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


def string_to_sign(x_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, x_date, scope, sha256_hex(canonical.encode("utf-8"))])


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    k_date = _hmac(secret_access_key.encode("utf-8"), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "request")


def signature(
    secret_access_key: str, x_date: str, region: str, service: str, canonical: str
) -> str:
    """Hex signature of a canonical request made at ``x_date``."""
    date = x_date[:8]
    key = signing_key(secret_access_key, date, region, service)
    to_sign = string_to_sign(x_date, credential_scope(date, region, service), canonical)
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
    """Headers that sign one request: ``X-Date``, ``X-Content-Sha256``, ``Authorization``
    (and ``X-Security-Token`` for STS credentials).

    Signed are ``host`` (from ``url``), ``content-type`` when ``headers`` has one, and every
    ``X-*`` header, exactly as the official SDK does.
    """
    x_date = format_x_date(now or utc_now())
    body_hash = sha256_hex(body)
    parts = urlsplit(url)
    added: dict[str, str] = {"X-Date": x_date, "X-Content-Sha256": body_hash}
    if session_token:
        added["X-Security-Token"] = session_token

    signable: dict[str, str] = {"host": canonical_host(parts.netloc)}
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
    date = x_date[:8]
    sig = signature(secret_access_key, x_date, region, service, canonical)
    added["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{credential_scope(date, region, service)}, "
        f"SignedHeaders={';'.join(sorted(signable))}, Signature={sig}"
    )
    return added


_SDK_VARIABLES = {
    "access_key_id": ENV_ACCESS_KEY,
    "secret_access_key": ENV_SECRET_KEY,
    "session_token": ENV_SESSION_TOKEN,
}


def check_credential(field: str, value: str) -> str:
    """``value`` fit to sign with and to send in a header: the spaces and line breaks a
    copy-paste leaves around it removed (said at DEBUG, without the value); anything else
    that is not printable ASCII refused with a :class:`ConfigurationError` naming ``field``
    (``access_key_id``, ``secret_access_key``, ``session_token``, or ``region``) and where
    to fix it.

    Why here, before any request: ``requests`` refuses such a header with a ``ValueError``
    that quotes the whole value (the session token, or the ``Authorization`` header), and
    ``http.client`` a non-latin-1 one with a ``UnicodeEncodeError`` that holds it; a secret
    with a line break is only a ``SignatureDoesNotMatch`` that hides the cause. The error
    never echoes the value, not even the character at fault, and is raised ``from None``.
    """
    stripped = value.strip()
    if stripped != value:
        logger.debug("Removed spaces or line breaks around %s", field)
    flaw = next((_flaw(char) for char in stripped if not "!" <= char <= "~"), None)
    if flaw is None:
        return stripped
    if field in _SDK_VARIABLES:
        variable = f"{SECTION}.credentials.{field}".upper().replace(".", "__")
        where = (
            f"Fix {field} under [{SECTION}.credentials] in .dlt/secrets.toml, or the "
            f"environment variable {variable} (or {_SDK_VARIABLES[field]}); copy it again "
            "from the Volcengine console as plain text."
        )
    else:
        where = where_to_fix(field)
    raise ConfigurationError(
        f"{field} contains {flaw}, which a real one never does (a copy-paste accident?); "
        f"the value is not shown. {where}"
    )


def _flaw(char: str) -> str:
    """What ``char`` is, in words that do not reveal it."""
    if char in "\r\n":
        return "a line break"
    if char in " \t":
        return "a space or tab inside it"
    if char < " " or char == "\x7f":
        return "a control character"
    return "a character outside ASCII (a typographic quote, a non-breaking space?)"


class VolcengineSigner(requests.auth.AuthBase):
    """``requests`` auth that signs each request with Volcengine's HMAC-SHA256 scheme.

    >>> session.post(url, data=body, auth=VolcengineSigner(ak, sk, region="cn-north-1"))

    The secret never leaves this object: ``repr`` shows the access key id only. Each
    credential (and the region) passes :func:`check_credential` first.
    """

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        *,
        region: str = DEFAULT_REGION,
        service: str = DEFAULT_SERVICE,
        clock: Clock = utc_now,
    ) -> None:
        self.access_key_id = check_credential("access_key_id", access_key_id)
        self._secret_access_key = check_credential("secret_access_key", secret_access_key)
        self._session_token = check_credential("session_token", session_token or "") or None
        self.region = check_credential("region", region)
        self.service = service
        self.clock = clock

    def __repr__(self) -> str:
        return (
            f"VolcengineSigner(access_key_id={self.access_key_id!r}, region={self.region!r}, "
            f"service={self.service!r})"
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes):
            raise TypeError("VolcengineSigner signs in-memory bodies only, not streams or files")
        signed = sign(
            method=request.method or "GET",
            url=request.url or "",
            headers=request.headers,
            body=body,
            access_key_id=self.access_key_id,
            secret_access_key=self._secret_access_key,
            session_token=self._session_token,
            region=self.region,
            service=self.service,
            now=self.clock(),
        )
        request.headers.update(signed)
        return request
