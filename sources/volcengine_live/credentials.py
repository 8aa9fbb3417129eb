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

    # Optional so that dlt hands a partial object to the source, which then says in one
    # message every place the credentials can go (dlt's own error lists config paths only).
    access_key_id: Optional[str] = None  # noqa: UP045 (dlt reads these annotations at runtime)
    secret_access_key: Optional[TSecretStrValue] = None  # noqa: UP045
    session_token: Optional[TSecretStrValue] = None  # noqa: UP045

    def on_resolved(self) -> None:
        """Fill what dlt did not find from the official SDKs' environment variables."""
        if not self.access_key_id and not self.secret_access_key:
            self.access_key_id = os.environ.get(ENV_ACCESS_KEY) or None
            self.secret_access_key = os.environ.get(ENV_SECRET_KEY) or None
            self.session_token = self.session_token or os.environ.get(ENV_SESSION_TOKEN) or None

    def __repr__(self) -> str:
        return f"VolcengineCredentials(access_key_id={self.access_key_id!r}, secret=***)"

    def __str__(self) -> str:
        return f"access key {self.access_key_id}"
