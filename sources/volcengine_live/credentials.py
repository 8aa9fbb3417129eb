"""Credentials for the Volcengine OpenAPI: a dlt credentials spec that is also the
``requests`` auth signing each request, so one object serves the source and dlt's own
``RESTClient`` or ``rest_api``:

>>> from dlt.sources.helpers.rest_client import RESTClient
>>> auth = VolcengineCredentials(access_key_id=ak, secret_access_key=sk)
>>> client = RESTClient("https://live.volcengineapi.com", auth=auth)

Resolved from ``[sources.volcengine_live.credentials]`` in ``.dlt/secrets.toml`` or
``SOURCES__VOLCENGINE_LIVE__CREDENTIALS__*`` environment variables; when those are absent the
official SDKs' ``VOLCENGINE_ACCESS_KEY`` / ``VOLCENGINE_SECRET_KEY`` (and
``VOLCENGINE_SESSION_TOKEN``), or their older ``VOLC_ACCESSKEY`` / ``VOLC_SECRETKEY`` (and
``VOLC_SESSIONTOKEN``), are used.
"""

from __future__ import annotations

import os
from typing import Optional

from dlt.common.configuration.specs import configspec
from dlt.common.typing import TSecretStrValue
from dlt.sources.helpers.rest_client.auth import AuthConfigBase
from requests import PreparedRequest

from .errors import ConfigurationError
from .settings import DEFAULT_REGION, ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_SESSION_TOKEN, SERVICE
from .signing import VolcengineSigner


@configspec
class VolcengineCredentials(AuthConfigBase):
    """An access key pair, with a session token for temporary (STS) credentials; as a
    ``requests`` auth, HMAC-SHA256 signing of every prepared request, afresh each time."""

    # Required, so that `dlt init` writes placeholders for them into secrets.toml; when dlt's
    # configuration lacks them, on_partial looks in the SDKs' environment variables.
    access_key_id: str = None  # type: ignore[assignment]  # dlt: required, unset
    secret_access_key: TSecretStrValue = None  # type: ignore[assignment]
    session_token: Optional[TSecretStrValue] = None  # noqa: UP045 (dlt reads it at runtime)
    region: str = DEFAULT_REGION
    """Signing region, when used as an auth on its own; the source signs with its own
    ``region`` setting."""
    service: str = SERVICE

    def on_partial(self) -> None:
        """dlt found no complete key pair: take the official SDKs' environment variables, or
        say in one message every place the credentials can go (dlt's own error lists its
        configuration keys only).

        Raises:
            ConfigurationError: no key pair anywhere.
        """
        if not self.access_key_id and not self.secret_access_key:
            self.access_key_id = _first_set(ENV_ACCESS_KEY)  # type: ignore[assignment]
            self.secret_access_key = _first_set(ENV_SECRET_KEY)  # type: ignore[assignment]
            self.session_token = self.session_token or _first_set(ENV_SESSION_TOKEN)
        if not self.access_key_id or not self.secret_access_key:
            raise ConfigurationError(MISSING_CREDENTIALS)
        self.resolve()

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


MISSING_CREDENTIALS = (
    "Volcengine credentials are missing. Put them in one of three places: "
    "(1) .dlt/secrets.toml under [sources.volcengine_live.credentials] as access_key_id and "
    "secret_access_key; (2) the environment variables "
    "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID and "
    "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY; (3) the official SDKs' "
    "VOLCENGINE_ACCESS_KEY and VOLCENGINE_SECRET_KEY (or VOLC_ACCESSKEY and VOLC_SECRETKEY). "
    "For one of several accounts, build the source with account_source(name)."
)


def _first_set(names: tuple[str, ...]) -> str | None:
    """The first of the environment variables ``names`` that holds a value."""
    return next((os.environ[name] for name in names if os.environ.get(name)), None)
