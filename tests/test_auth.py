"""The signer as a dlt auth object works with dlt's own REST client against the emulator."""

from __future__ import annotations

from conftest import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator

from volcengine_live.auth import VolcengineAuth
from volcengine_live_emulator import Emulator


def test_rest_client_pages_through_the_emulator_with_volcengine_auth(emulator: Emulator) -> None:
    client = RESTClient(
        base_url=emulator.endpoint + "/",
        auth=VolcengineAuth(access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY),
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
        auth=VolcengineAuth(access_key_id=ACCESS_KEY_ID, secret_access_key="not-the-secret"),
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
