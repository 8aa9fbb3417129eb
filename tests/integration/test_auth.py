"""The credentials, as a dlt auth object, work with dlt's REST client against the emulator."""

from __future__ import annotations

import pytest
from dlt.common.configuration import resolve_configuration
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator

from volcengine_live import VolcengineCredentials
from volcengine_live_emulator import Emulator

from helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY


def test_rest_client_pages_through_the_emulator_with_volcengine_auth(emulator: Emulator) -> None:
    client = RESTClient(
        base_url=emulator.endpoint + "/",
        auth=VolcengineCredentials(
            access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY
        ),
        paginator=PageNumberPaginator(
            base_page=1, page_body_path="PageNum", total_path="Result.Pagination.PageTotal"
        ),
        data_selector="Result.List",
    )
    task_ids = [
        task["TaskId"]
        for page in client.paginate(
            "",
            method="POST",
            params={"Action": "ListPullRecordTask", "Version": "2023-01-01"},
            json={"PageNum": 1, "PageSize": 500},
        )
        for task in page
    ]
    assert len(task_ids) == len(set(task_ids)) == emulator.store.count
    assert emulator.stats.by_status.get(401, 0) == 0


def test_a_wrong_secret_is_refused(emulator: Emulator) -> None:
    client = RESTClient(
        base_url=emulator.endpoint + "/",
        auth=VolcengineCredentials(access_key_id=ACCESS_KEY_ID, secret_access_key="not-the-secret"),
    )
    response = client.session.post(
        client.base_url,
        params={"Action": "ListPullRecordTask", "Version": "2023-01-01"},
        json={"PageNum": 1, "PageSize": 10},
        auth=client.auth,
    )
    assert response.status_code == 401
    assert response.json()["ResponseMetadata"]["Error"]["Code"] == "SignatureDoesNotMatch"
    assert "not-the-secret" not in repr(client.auth)


def test_credentials_resolved_the_dlt_way_sign_as_an_auth(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One class: the spec dlt resolves from the environment is the auth that signs."""
    monkeypatch.setenv("VOLC_ACCESSKEY", ACCESS_KEY_ID)
    monkeypatch.setenv("VOLC_SECRETKEY", SECRET_ACCESS_KEY)
    auth = resolve_configuration(
        VolcengineCredentials(), sections=("sources", "volcengine_live", "credentials")
    )
    response = RESTClient(base_url=emulator.endpoint + "/", auth=auth).session.post(
        emulator.endpoint + "/",
        params={"Action": "ListPullRecordTask", "Version": "2023-01-01"},
        json={"PageNum": 1, "PageSize": 10},
        auth=auth,
    )
    assert response.status_code == 200, response.text
    for text in (repr(auth), str(auth), f"{auth!r}"):
        assert SECRET_ACCESS_KEY not in text
