"""The client's HTTP against the emulator on loopback: keep-alive connections and the
environment's proxy settings, kept by ``LiveApiClient._attempt``'s own use of ``requests``
(it reads each body in one call and looks the environment up once a session)."""

from __future__ import annotations

import pytest
import requests

from volcengine_live import RetriesExhaustedError
from volcengine_live.client import ClientConfig, LiveApiClient
from volcengine_live_emulator import Emulator

from helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY


def _client(emulator: Emulator, max_attempts: int = 3) -> LiveApiClient:
    config = ClientConfig(
        endpoint=emulator.endpoint, requests_per_second=None, max_attempts=max_attempts
    )
    return LiveApiClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=config)


def test_pages_read_one_after_another_share_one_connection(emulator: Emulator) -> None:
    client = _client(emulator)
    pages = [client.fetch_page(page_num, 100) for page_num in range(1, 6)]
    assert [len(page.tasks) for page in pages] == [100] * 5
    session, _ = client._session()
    adapter = session.get_adapter(client.url)
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    pools = adapter.poolmanager.pools  # urllib3's container refuses iteration, not keys()
    counts = [(pools[k].num_requests, pools[k].num_connections) for k in pools.keys()]  # noqa: SIM118
    assert counts == [(5, 1)]
    client.close()


def test_a_proxy_set_in_the_environment_is_used(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # discard: nothing listens
    client = _client(emulator, max_attempts=1)
    with pytest.raises(RetriesExhaustedError) as failure:
        client.fetch_page(1, 100)
    assert isinstance(failure.value.__cause__, requests.exceptions.ProxyError)
    assert emulator.stats.pages == 0
    client.close()
