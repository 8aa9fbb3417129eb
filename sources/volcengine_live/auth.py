"""Volcengine signing as a dlt auth object, for dlt's ``RESTClient`` and ``rest_api``.

>>> from dlt.sources.helpers.rest_client import RESTClient
>>> client = RESTClient("https://live.volcengineapi.com", auth=VolcengineAuth(ak, sk))

It is configurable like any dlt credentials, and signs every prepared request afresh.
"""

from __future__ import annotations

from typing import Optional

from dlt.common.configuration.specs import configspec
from dlt.common.typing import TSecretStrValue
from dlt.sources.helpers.rest_client.auth import AuthConfigBase
from requests import PreparedRequest

from .settings import DEFAULT_REGION, SERVICE
from .signing import VolcengineSigner


@configspec
class VolcengineAuth(AuthConfigBase):
    """HMAC-SHA256 request signing with an access key pair (and STS session token)."""

    access_key_id: str = None  # type: ignore[assignment]
    secret_access_key: TSecretStrValue = None  # type: ignore[assignment]
    session_token: Optional[TSecretStrValue] = None  # noqa: UP045 (dlt reads the annotation)
    region: str = DEFAULT_REGION
    service: str = SERVICE

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        signer = VolcengineSigner(
            self.access_key_id,
            self.secret_access_key,
            self.session_token,
            region=self.region,
            service=self.service,
        )
        return signer(request)

    def __repr__(self) -> str:
        return f"VolcengineAuth(access_key_id={self.access_key_id!r}, region={self.region!r})"
