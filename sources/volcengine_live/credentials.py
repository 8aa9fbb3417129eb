"""Credentials for the Volcengine OpenAPI: a dlt credentials spec that is also the
``requests`` auth signing each request, so one object serves the source and dlt's own
``RESTClient`` or ``rest_api``:

>>> from dlt.sources.helpers.rest_client import RESTClient
>>> auth = VolcengineCredentials(access_key_id=ak, secret_access_key=sk)
>>> client = RESTClient("https://live.volcengineapi.com", auth=auth)

Resolved from ``[sources.volcengine_live.credentials]`` in ``.dlt/secrets.toml`` or
``SOURCES__VOLCENGINE_LIVE__CREDENTIALS__*`` environment variables; when those are absent the
official SDKs' ``VOLC_ACCESSKEY`` / ``VOLC_SECRETKEY`` (and ``VOLC_SESSIONTOKEN``) are used.
"""

from __future__ import annotations

import os
from typing import Optional

from dlt.common.configuration.specs import configspec
from dlt.common.typing import TSecretStrValue
from dlt.sources.helpers.rest_client.auth import AuthConfigBase
from requests import PreparedRequest

from .settings import DEFAULT_REGION, ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_SESSION_TOKEN, SERVICE
from .signing import VolcengineSigner


@configspec
class VolcengineCredentials(AuthConfigBase):
    """An access key pair, with a session token for temporary (STS) credentials; as a
    ``requests`` auth, HMAC-SHA256 signing of every prepared request, afresh each time."""

    # Optional so that dlt hands a partial object to the source, which then says in one
    # message every place the credentials can go (dlt's own error lists config paths only).
    access_key_id: Optional[str] = None  # noqa: UP045 (dlt reads these annotations at runtime)
    secret_access_key: Optional[TSecretStrValue] = None  # noqa: UP045
    session_token: Optional[TSecretStrValue] = None  # noqa: UP045
    region: str = DEFAULT_REGION
    """Signing region, when used as an auth on its own; the source signs with its own
    ``region`` setting."""
    service: str = SERVICE

    def on_resolved(self) -> None:
        """Fill what dlt did not find from the official SDKs' environment variables."""
        if not self.access_key_id and not self.secret_access_key:
            self.access_key_id = os.environ.get(ENV_ACCESS_KEY) or None
            self.secret_access_key = os.environ.get(ENV_SECRET_KEY) or None
            self.session_token = self.session_token or os.environ.get(ENV_SESSION_TOKEN) or None

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        signer = VolcengineSigner(
            self.access_key_id or "",
            self.secret_access_key or "",
            self.session_token,
            region=self.region,
            service=self.service,
        )
        return signer(request)

    def __repr__(self) -> str:
        return f"VolcengineCredentials(access_key_id={self.access_key_id!r}, secret=***)"

    def __str__(self) -> str:
        return f"access key {self.access_key_id}"
