"""Error codes the emulator answers with, and the documented error envelope.

HTTP statuses and messages follow the ListPullRecordTask page and Volcengine's public error
code list. ``CodeN`` is sent where the public list documents a number (gateway codes); the
service's own codes (CommonErr, InvalidParam, RequestForbidden, ...) have none documented and
are sent without one, as the real service's examples show them: a client must not need it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorSpec:
    """How one error code is answered."""

    status: int
    code_n: int | None
    message: str


KNOWN_ERRORS: dict[str, ErrorSpec] = {
    # The service's own codes (ListPullRecordTask page).
    "CommonErr": ErrorSpec(200, None, "unclassified error, please retry"),
    "InvalidParam": ErrorSpec(400, None, "the request parameter is invalid"),
    "InvalidParam.BindError": ErrorSpec(
        400, None, "Request parameter error, please check input data"
    ),
    "RequestForbidden": ErrorSpec(403, None, "the request is forbidden for this account"),
    "RequestForbidden.AccountIDNotAllow": ErrorSpec(
        403,
        None,
        "this AccountID does not have permission to access the corresponding resource, "
        "please check the request parameters",
    ),
    "RequestForbidden.BillingStatus": ErrorSpec(
        403,
        None,
        "Billing status is not available for the AccountID, please activate the service "
        "or recharge.",
    ),
    "ResourceNotFound": ErrorSpec(404, None, "the resource was not found"),
    "InternalServiceError": ErrorSpec(
        502, None, "an internal error occurred, please contact the administrator."
    ),
    "InternalServiceError.BadResponse": ErrorSpec(
        502, None, "an internal error occurred, please contact the administrator."
    ),
    # Gateway-wide codes (public error code list).
    "MissingAuthenticationToken": ErrorSpec(
        401, 100003, "Request is missing Authentication Token."
    ),
    "MissingRequestInfo": ErrorSpec(400, 100004, "The request is missing X-Date information."),
    "InvalidTimestamp": ErrorSpec(400, 100006, "The Signature of the request is expired."),
    "InvalidActionOrVersion": ErrorSpec(
        404, 100008, "Could not find operation {action} for version {version}."
    ),
    "InvalidAccessKey": ErrorSpec(
        401, 100009, "The accesskey [{access_key_id}] included in the request is invalid."
    ),
    "SignatureDoesNotMatch": ErrorSpec(
        401,
        100010,
        "The request signature we calculated does not match the signature you provided. "
        "Check your Secret Access Key and signing method. Consult the service documentation "
        "for details.",
    ),
    # Documented for STS tokens (401) without a CodeN.
    "InvalidSecretToken": ErrorSpec(401, None, "Invalid secret token, msg: {detail}."),
    "LackPolicy": ErrorSpec(403, 100012, "Request was rejected because of lack of policy."),
    "AccessDenied": ErrorSpec(
        403,
        100013,
        "User is not authorized to perform: live:ListPullRecordTask on resource: trn:live::*:*.",
    ),
    "InternalError": ErrorSpec(
        500, 100014, "Service has some internal Error. Pls Contact With Admin."
    ),
    "InternalServiceTimeout": ErrorSpec(
        504, 100016, "Internal Service is timeout. please contact the administrator."
    ),
    "FlowLimitExceeded": ErrorSpec(
        429, 100018, "Request was denied due to request throttling (flow limit exceeded)."
    ),
    "ServiceUnavailableTemp": ErrorSpec(
        503, 100019, "Service is temporarily unavailable, please try again later."
    ),
}


class ApiFailure(Exception):
    """Raised while handling a request: answer with this error envelope."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        code_n: int | None = None,
        headers: dict[str, str] | None = None,
        **message_fields: str,
    ) -> None:
        spec = KNOWN_ERRORS.get(code)
        self.code = code
        self.status = status if status is not None else (spec.status if spec else 400)
        self.code_n = code_n if code_n is not None else (spec.code_n if spec else None)
        template = spec.message if spec else code
        if message is None:
            try:
                message = template.format(**message_fields)
            except (KeyError, IndexError):
                message = template
        self.message = message
        self.headers = headers or {}
        super().__init__(f"{code} ({self.status}): {message}")


def error_envelope(metadata: dict[str, Any], code: str, message: str, code_n: int | None) -> bytes:
    """The documented error body: ``ResponseMetadata`` with ``Error``, and no ``Result``."""
    error: dict[str, Any] = {"Code": code}
    if code_n is not None:
        error["CodeN"] = code_n
    error["Message"] = message
    return json.dumps(
        {"ResponseMetadata": {**metadata, "Error": error}},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
