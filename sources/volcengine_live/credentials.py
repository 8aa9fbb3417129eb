"""Credentials for the Volcengine OpenAPI, injected the dlt way.

Resolved from ``[sources.volcengine_live.credentials]`` in ``.dlt/secrets.toml`` or
``SOURCES__VOLCENGINE_LIVE__CREDENTIALS__*`` environment variables; when those are absent the
official SDKs' ``VOLC_ACCESSKEY`` / ``VOLC_SECRETKEY`` (and ``VOLC_SESSIONTOKEN``) are used.
"""

from __future__ import annotations

import os
from typing import Optional

from dlt.common.configuration.specs import CredentialsConfiguration, configspec
from dlt.common.typing import TSecretStrValue

from .settings import ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_SESSION_TOKEN


@configspec
class VolcengineCredentials(CredentialsConfiguration):
    """An access key pair, with a session token for temporary (STS) credentials."""

    access_key_id: str = None
    secret_access_key: TSecretStrValue = None
    session_token: Optional[TSecretStrValue] = None  # noqa: UP045 (dlt reads this annotation)

    def on_partial(self) -> None:
        """Fall back to the official SDKs' environment variables for what dlt did not find."""
        self.access_key_id = self.access_key_id or os.environ.get(ENV_ACCESS_KEY)
        self.secret_access_key = self.secret_access_key or os.environ.get(ENV_SECRET_KEY)
        self.session_token = self.session_token or os.environ.get(ENV_SESSION_TOKEN) or None
        if self.access_key_id and self.secret_access_key:
            self.resolve()

    def __repr__(self) -> str:
        return f"VolcengineCredentials(access_key_id={self.access_key_id!r}, secret=***)"

    def __str__(self) -> str:
        return f"access key {self.access_key_id}"
