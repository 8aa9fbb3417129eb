"""The name dlt's ``RESTClient`` examples used before the credentials became the auth:
:class:`VolcengineAuth` is :class:`~volcengine_live.credentials.VolcengineCredentials`."""

from __future__ import annotations

from .credentials import VolcengineCredentials as VolcengineAuth

__all__ = ["VolcengineAuth"]
