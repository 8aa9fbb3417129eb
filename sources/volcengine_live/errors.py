"""What can go wrong when reading the API, each error saying what to do about it."""

from __future__ import annotations

from dataclasses import dataclass

# Codes a client should retry: the gateway or the service had a moment.
TRANSIENT_CODES = frozenset(
    {
        "CommonErr",
        "InternalError",
        "InternalServiceError",
        "InternalServiceError.BadResponse",
        "InternalServiceTimeout",
        "FlowLimitExceeded",
        "ServiceUnavailableTemp",
    }
)

_HINTS: dict[str, str] = {
    "MissingAuthenticationToken": (
        "No credentials were sent. Set access_key_id and secret_access_key under "
        "[sources.volcengine_live.credentials] in .dlt/secrets.toml, or the environment "
        "variables SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID / "
        "..._SECRET_ACCESS_KEY, or VOLC_ACCESSKEY / VOLC_SECRETKEY."
    ),
    "InvalidAccessKey": (
        "The access key id is not known to Volcengine. Check access_key_id in "
        "[sources.volcengine_live.credentials] (or VOLC_ACCESSKEY)."
    ),
    "SignatureDoesNotMatch": (
        "The signature was refused: the secret access key does not belong to this access key "
        "id, or region/endpoint do not match the account. Check secret_access_key (copied "
        "whole, nothing around it: spaces and line breaks at its ends are removed, but not a "
        "character lost or added) and [sources.volcengine_live] region."
    ),
    "InvalidTimestamp": (
        "The request time (X-Date) is too far from Volcengine's clock. Sync this machine's "
        "clock (NTP) and run again."
    ),
    "InvalidActionOrVersion": (
        "The endpoint does not serve ListPullRecordTask (or, for record_files, "
        "DescribeRecordTaskFileHistory) 2023-01-01. Check [sources.volcengine_live] endpoint."
    ),
    "AccessDenied": (
        "The credentials lack permission. Grant the IAM policy action "
        "live:ListPullRecordTask (and live:DescribeRecordTaskFileHistory for record_files) "
        "to this user or role."
    ),
    "LackPolicy": (
        "The credentials lack permission. Grant the IAM policy action "
        "live:ListPullRecordTask (and live:DescribeRecordTaskFileHistory for record_files) "
        "to this user or role."
    ),
    "RequestForbidden": "The account may not use this resource. Check the account and region.",
    "RequestForbidden.AccountIDNotAllow": (
        "This account may not list these recording tasks. Check the account and region."
    ),
    "RequestForbidden.BillingStatus": (
        "Volcengine Live is not enabled for this account, or the account is in arrears. "
        "Enable the service or settle the bill in the Volcengine console."
    ),
    "ResourceNotFound": "The resource was not found. Check the endpoint and region.",
    "InvalidParam": "The request was refused as invalid. Check page_size (1 to 500).",
    "InvalidParam.BindError": "The request body was refused. Check page_size (1 to 500).",
}


class VolcengineLiveError(Exception):
    """Base class of every error this source raises."""


class ConfigurationError(VolcengineLiveError):
    """A setting or credential is missing or invalid; the message says where to fix it."""


@dataclass
class ApiError(VolcengineLiveError):
    """The API answered with an error envelope (``ResponseMetadata.Error``)."""

    code: str
    message: str
    http_status: int
    code_n: int | None = None
    request_id: str | None = None
    retry_after: float | None = None
    """Seconds the server asked the client to wait (``Retry-After``), if it said."""

    def __post_init__(self) -> None:
        super().__init__(str(self))

    @property
    def transient(self) -> bool:
        return is_transient_code(self.code, self.http_status)

    @property
    def hint(self) -> str:
        return hint_for(self.code)

    def __str__(self) -> str:
        where = f" (request id {self.request_id})" if self.request_id else ""
        message = self.message.rstrip(" .")
        text = f"Volcengine API error {self.code} (HTTP {self.http_status}){where}: {message}"
        return f"{text}. {self.hint}" if self.hint else text


class TransientError(VolcengineLiveError):
    """A fault worth retrying that is not an API error envelope: a network fault, a proxy's
    HTML page, a truncated or malformed body."""


class MalformedResponseError(TransientError):
    """The body is not the documented ListPullRecordTask response."""


class RequestDeadlineError(TransientError):
    """A response that was not in whole within ``request_timeout`` of its request (connect,
    headers and the whole body): a server that stalls, or drips a byte now and then so that
    no single read ever times out. Retried like any network fault."""


class ResponseTooLargeError(VolcengineLiveError):
    """A response body larger than ``max_response_bytes`` once decompressed. Not retried:
    a real page is a thousandth of the cap, so the endpoint is not the API (a wrong URL, a
    proxy, a hostile server), and asking again would inflate as much again."""


class RunTimeoutError(VolcengineLiveError):
    """The run took longer than ``run_timeout``; it fails before anything is committed."""


class RetriesExhaustedError(VolcengineLiveError):
    """A transient fault lasted longer than the configured attempts."""


class IncompleteScanError(VolcengineLiveError):
    """A scan read fewer tasks than the API's TotalCount promised, even after re-reading."""


def is_transient_code(code: str, http_status: int) -> bool:
    """Whether an error envelope is worth retrying: listed codes, and any 5xx or 429."""
    return code in TRANSIENT_CODES or http_status == 429 or http_status >= 500


def hint_for(code: str) -> str:
    if code in _HINTS:
        return _HINTS[code]
    if code.startswith("HTTP"):
        return (
            f"The endpoint answered {code[:4]} {code[4:]} with a page that is not the API's: "
            "a proxy, a firewall or a wrong URL is in the way. Check [sources.volcengine_live] "
            "endpoint, and any proxy (HTTPS_PROXY) between this machine and Volcengine."
        )
    family = code.split(".", 1)[0]
    return _HINTS.get(family, "")
