"""The secret access key (and an STS session token) never show up anywhere a user or an
attacker could read them: output, logs at DEBUG, error messages and their causes, reprs,
the pipeline's working dir, the DuckDB file. And signed requests never go to a remote host
over plain http.

Every path runs with credentials resolved the dlt way (environment variables), dlt's log
level at DEBUG and Python logging at DEBUG: a successful run through transient retries, a
billing error, retries exhausted, a wrong secret, a refused endpoint.
"""

from __future__ import annotations

import gc
import gzip
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from dlt.common.versioned_state import decompress_state
from dlt.pipeline.exceptions import PipelineStepFailed

from volcengine_live import ConfigurationError, VolcengineCredentials, volcengine_live_source
from volcengine_live.client import LiveApiClient
from volcengine_live.signing import VolcengineSigner
from volcengine_live_emulator import Emulator

from helpers import DATASET, Loader, assert_matches_emulator
from reliability_support import error_chain

SECRET = "S3CR3T-do-not-leak-8d1f"
TOKEN = "T0KEN-do-not-leak-51c7"
ACCESS_KEY_ID = "AKLTleakcheck"
NEEDLES = (SECRET, TOKEN)

# ----------------------------------------------------------- connections, seen by audit

_connections: list[list[tuple[str, Any]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _connections and event in ("socket.connect", "socket.getaddrinfo"):
        _connections[-1].append((event, args[1] if event == "socket.connect" else args[0]))


sys.addaudithook(_audit)  # cannot be removed: it records only while a test listens


class ConnectionLog:
    def __enter__(self) -> list[tuple[str, Any]]:
        _connections.append([])
        return _connections[-1]

    def __exit__(self, *exc: object) -> None:
        _connections.pop()


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """An STS key: the emulator wants both the secret and the session token."""
    with Emulator(
        tasks=650,
        seed=41,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET,
        session_token=TOKEN,
        rate_limit=None,
    ) as emu:
        yield emu


@pytest.fixture
def debug_everywhere(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    # and the source's own logger, which a command run earlier in the process set to WARNING
    caplog.set_level(logging.DEBUG, logger="volcengine_live")


@pytest.fixture(params=["dlt-env", "sdk-env"])
def configured(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials where users keep them: dlt's variables, or the official SDKs'."""
    if request.param == "dlt-env":
        prefix = "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__"
        monkeypatch.setenv(prefix + "ACCESS_KEY_ID", ACCESS_KEY_ID)
        monkeypatch.setenv(prefix + "SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv(prefix + "SESSION_TOKEN", TOKEN)
    else:
        monkeypatch.setenv("VOLC_ACCESSKEY", ACCESS_KEY_ID)
        monkeypatch.setenv("VOLC_SECRETKEY", SECRET)
        monkeypatch.setenv("VOLC_SESSIONTOKEN", TOKEN)
    return str(request.param)


def source(emulator: Emulator, **settings: Any) -> Any:
    settings.setdefault("page_size", 100)
    settings.setdefault("max_attempts", 4)
    settings.setdefault("backoff_seconds", 0.01)
    settings.setdefault("endpoint", emulator.endpoint)
    return volcengine_live_source(**settings)


# ---------------------------------------------------------------------------- checks


def leaks(data: str | bytes) -> list[str]:
    if isinstance(data, str):
        return [needle for needle in NEEDLES if needle in data]
    return [needle for needle in NEEDLES if needle.encode() in data]


def assert_clean(data: str | bytes, where: str) -> None:
    found = leaks(data)
    assert not found, f"{found} found in {where}"


def exception_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    yield "traceback", "".join(traceback.format_exception(error))
    for link in error_chain(error):
        name = type(link).__name__
        yield f"str({name})", str(link)
        yield f"repr({name})", repr(link)
        yield f"args({name})", repr(link.args)
        yield f"attributes({name})", repr(vars(link)) if hasattr(link, "__dict__") else ""


def assert_logs_clean(caplog: pytest.LogCaptureFixture) -> None:
    formatter = logging.Formatter()
    assert caplog.records, "nothing was logged: is DEBUG logging on?"
    for record in caplog.records:
        where = f"log record {record.name}:{record.lineno}"
        assert_clean(record.getMessage(), where)
        assert_clean(repr(record.args), where)
        if record.exc_info:
            assert_clean(formatter.formatException(record.exc_info), where)
        if record.exc_text:
            assert_clean(record.exc_text, where)


def file_texts(path: Path) -> Iterator[str | bytes]:
    data = path.read_bytes()
    yield data
    if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
        yield gzip.decompress(data)
    if data[:4] == b"PAR1":
        yield repr(pq.read_table(path).to_pylist())


def assert_dir_clean(root: Path) -> int:
    checked = 0
    for path in root.rglob("*"):
        if path.is_file():
            for text in file_texts(path):
                assert_clean(text, str(path.relative_to(root)))
            checked += 1
    return checked


def assert_database_clean(database: Path) -> None:
    for path in database.parent.glob(database.name + "*"):  # the file and any .wal
        assert_clean(path.read_bytes(), path.name)
    with duckdb.connect(str(database), read_only=True) as con:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR'"
        ).fetchall()
        assert columns
        for schema, table, column in columns:
            values = con.execute(f'SELECT "{column}" FROM "{schema}"."{table}"').fetchall()
            assert_clean(repr(values), f"{schema}.{table}.{column}")
        states = con.execute(f"SELECT state FROM {DATASET}._dlt_pipeline_state").fetchall()
        assert states
        for (state,) in states:  # stored compressed: look inside
            assert_clean(repr(decompress_state(state)), "_dlt_pipeline_state.state (decoded)")


def assert_objects_clean() -> None:
    """The credentials object and every API client alive (the sources' clients) do not show
    the secret in repr or str."""
    credentials = VolcengineCredentials()
    credentials.access_key_id = ACCESS_KEY_ID
    credentials.secret_access_key = SECRET
    credentials.session_token = TOKEN
    for text in (repr(credentials), str(credentials)):
        assert_clean(text, "VolcengineCredentials")
    # (A client whose endpoint was refused is left half-built, its repr raising: skip it.)
    clients = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, LiveApiClient) and hasattr(obj, "endpoint")
    ]
    assert clients, "no client found to check"
    for client in clients:
        assert_clean(repr(client), "repr(LiveApiClient)")
        assert_clean(str(client), "str(LiveApiClient)")
        assert_clean(repr(vars(client.config)), "LiveApiClient.config")


# ----------------------------------------------------------------------------- tests


@pytest.mark.usefixtures("debug_everywhere")
def test_the_secret_appears_nowhere_on_success_and_failure_paths(
    loader: Loader,
    configured: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    emulator = loader.emulator
    pipeline = loader.pipeline()
    errors: list[BaseException] = []

    # 1. success through transient faults (every retry is signed again)
    emulator.faults.add("internal_error", times=2, page=2)
    emulator.faults.add("reset", times=1, page=3)
    emulator.faults.add("flow_limit", times=1, page=4)
    emulator.faults.add("common_err", times=1, page=1)
    the_source = source(emulator)
    assert_clean(repr(the_source), "repr(source)")
    pipeline.run(the_source)
    assert_matches_emulator(loader)
    assert loader.metrics(pipeline)["retries"] == 5

    # 2. billing error (permanent)
    emulator.faults.add("billing", times=None, page=2)
    with pytest.raises(PipelineStepFailed) as billing:
        loader.pipeline().run(source(emulator))
    errors.append(billing.value)
    emulator.faults.clear()

    # 3. transient faults that outlast the attempts
    emulator.faults.add("internal_error", times=None, page=3)
    with pytest.raises(PipelineStepFailed) as exhausted:
        loader.pipeline().run(source(emulator, max_attempts=2))
    errors.append(exhausted.value)
    emulator.faults.clear()

    # 4. the wrong secret (the emulator now expects another one)
    emulator.add_credentials(ACCESS_KEY_ID, "the-right-secret", TOKEN)
    with pytest.raises(PipelineStepFailed) as wrong:
        loader.pipeline().run(source(emulator))
    errors.append(wrong.value)
    assert "SignatureDoesNotMatch" in str(wrong.value)

    # 5. a refused endpoint
    with pytest.raises(ConfigurationError) as refused:
        source(emulator, endpoint="http://live.volcengineapi.com")
    errors.append(refused.value)

    # Messages and reprs, the chained causes included.
    for error in errors:
        for where, text in exception_texts(error):
            assert_clean(text, where)
    assert_objects_clean()
    # dlt's trace keeps resolved config values: the secret ones must be masked.
    for trace in (loader.pipeline().last_trace,):
        assert trace is not None
        assert_clean(repr(trace), "pipeline.last_trace")
        for value in trace.resolved_config_values:
            if value.key in ("secret_access_key", "session_token"):
                assert value.is_secret_hint and value.value is None
    # Output and logs.
    captured = capfd.readouterr()
    assert_clean(captured.out, "stdout")
    assert_clean(captured.err, "stderr")
    assert "DEBUG" in captured.err or any(r.levelno == logging.DEBUG for r in caplog.records)
    assert_logs_clean(caplog)
    # Everything the pipeline wrote to disk.
    assert assert_dir_clean(loader.workdir / "pipelines") > 5
    assert_database_clean(loader.duckdb_path)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://live.volcengineapi.com",
        "http://live.volcengineapi.com:80/",
        "http://10.0.0.8:8080",
        "http://localhost.example.com",
        "ftp://live.volcengineapi.com",
        "live.volcengineapi.com",
    ],
)
def test_plain_http_to_a_remote_host_is_refused_before_any_connection(
    endpoint: str, configured: str
) -> None:
    with ConnectionLog() as connections, pytest.raises(ConfigurationError) as refused:
        volcengine_live_source(endpoint=endpoint)
    assert "endpoint" in str(refused.value)
    assert connections == []
    assert_clean(str(refused.value), "the refusal")


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1.nip.io", "http://127.attacker.example"])
def test_a_dns_name_that_merely_starts_with_127_is_not_loopback(
    endpoint: str, configured: str
) -> None:
    with ConnectionLog() as connections, pytest.raises(ConfigurationError):
        volcengine_live_source(endpoint=endpoint)
    assert connections == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_plain_http_is_allowed_on_this_machine(
    emulator: Emulator, host: str, configured: str, tmp_path: Path
) -> None:
    loader = Loader(emulator, tmp_path)
    endpoint = emulator.endpoint.replace("127.0.0.1", host)
    with ConnectionLog() as connections:
        loader.pipeline().run(source(emulator, endpoint=endpoint))
    assert_matches_emulator(loader)
    remote = [
        target
        for event, target in connections
        if event == "socket.connect"
        and isinstance(target, tuple)
        and target[0] not in ("127.0.0.1", "::1")
    ]
    assert not remote, remote


# ------------------------------------------------- credentials pasted with what breaks them

FLAWS = {
    "newline": "\n",
    "crlf": "\r\n",
    "nul": "\x00",
    "non-latin-1": "\u79d8",
    "latin-1 only": "\u00e9",
}
FIELDS = ("access_key_id", "secret_access_key", "session_token")


def pasted(field: str, flaw: str) -> tuple[VolcengineCredentials, list[str]]:
    """Credentials whose ``field`` has ``flaw`` inside it, and what must not leak: the
    whole value and each part of it."""
    values = {"access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET, "session_token": TOKEN}
    head, tail = f"{field}-HEAD-4b1e", f"{field}-TAIL-93ad"
    values[field] = head + flaw + tail
    credentials = VolcengineCredentials()
    for name, value in values.items():
        setattr(credentials, name, value)
    return credentials, [values[field], head, tail]


@pytest.mark.usefixtures("debug_everywhere")
@pytest.mark.parametrize("flaw", FLAWS.values(), ids=FLAWS.keys())
@pytest.mark.parametrize("field", FIELDS)
def test_a_credential_with_a_line_break_or_odd_character_is_refused_by_name_unshown(
    emulator: Emulator, caplog: pytest.LogCaptureFixture, field: str, flaw: str
) -> None:
    credentials, needles = pasted(field, flaw)
    with ConnectionLog() as connections, pytest.raises(ConfigurationError) as refused:
        source(emulator, credentials=credentials)
    message = str(refused.value)
    assert field in message and "secrets.toml" in message
    assert f"SOURCES__VOLCENGINE_LIVE__CREDENTIALS__{field.upper()}" in message
    assert connections == [] and emulator.stats.requests == 0
    assert refused.value.__cause__ is None and refused.value.__context__ is None
    texts = [*exception_texts(refused.value), *((r.name, r.getMessage()) for r in caplog.records)]
    texts += [(r.name, repr(r.args)) for r in caplog.records]
    for where, text in texts:
        found = [needle for needle in [*needles, *NEEDLES] if needle in text]
        assert not found, f"{found} found in {where}"


@pytest.mark.usefixtures("debug_everywhere")
def test_spaces_and_line_breaks_around_credentials_are_removed_and_the_run_works(
    loader: Loader, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A token copied with its line break (the issue's case) or a secret with a space
    around it signs as the clean value; DEBUG says so, without the value."""
    credentials = VolcengineCredentials()
    credentials.access_key_id = f" {ACCESS_KEY_ID}\t"
    credentials.secret_access_key = f"{SECRET} \n"
    credentials.session_token = f"{TOKEN}\r\n"
    loader.pipeline().run(source(emulator, credentials=credentials))
    assert_matches_emulator(loader)
    removed = [r.getMessage() for r in caplog.records if "Removed spaces" in r.getMessage()]
    assert any("session_token" in text for text in removed)
    assert any("secret_access_key" in text for text in removed)
    assert_logs_clean(caplog)


def test_the_signer_refuses_a_region_with_a_line_break_by_name() -> None:
    with pytest.raises(ConfigurationError, match=r"region .*\[sources.volcengine_live\]"):
        VolcengineSigner(ACCESS_KEY_ID, SECRET, region="cn-north-1\nx")
