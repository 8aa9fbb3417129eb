"""A throwaway PostgreSQL cluster on loopback for the destination tests.

``initdb`` into a temporary folder, ``pg_ctl start`` on a free 127.0.0.1 port with Unix
sockets off, password (SCRAM) authentication; stopped and deleted when the test process
ends. No system service is used or needed: only the server binaries, which
``scripts/ensure-postgres.sh`` installs (``make test`` runs it). PostgreSQL refuses to run
as root, so under root the cluster belongs to the ``postgres`` user (or ``nobody``).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass

import pytest

USER = "loader"
PASSWORD = "loader-test-password"
DATABASE = "volcengine"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str = USER
    password: str = PASSWORD
    database: str = DATABASE

    @property
    def url(self) -> str:
        """A connection string as dlt takes it (``DESTINATION__POSTGRES__CREDENTIALS``)."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def connect(self) -> object:
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.database,
        )


SYSTEM_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin")
"""Where Debian puts system programs: root's cron runs with ``PATH=/usr/bin:/bin``, which
has no ``sbin``, so ``runuser`` (``/usr/sbin``) is not found by its bare name there."""


def system_program(name: str) -> str:
    """The absolute path of the system program ``name``: on PATH, else in the system
    folders; raises FileNotFoundError naming the folders searched."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SYSTEM_DIRS))
    if found is None:
        raise FileNotFoundError(
            f"{name} is neither on PATH nor in {', '.join(SYSTEM_DIRS)}: install util-linux"
        )
    return os.path.abspath(found)


def server_bindir() -> str | None:
    """The newest PostgreSQL server's bin folder (Debian layout first, then PATH and the
    system folders)."""
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True):
        if os.access(os.path.join(bindir, "initdb"), os.X_OK):
            return bindir
    try:
        initdb = system_program("initdb")
    except FileNotFoundError:
        return None
    return os.path.dirname(os.path.realpath(initdb))


def _version(path: str) -> float:
    try:
        return float(path.split("/")[-2])
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Cluster:
    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.prefix: list[str] = []
        owner = None
        if os.geteuid() == 0:
            name = "postgres" if _user_exists("postgres") else "nobody"
            owner = pwd.getpwnam(name)
            self.prefix = [system_program("runuser"), "-u", name, "--"]
        self.root = tempfile.mkdtemp(prefix="volcengine-live-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        pwfile = os.path.join(self.root, "pwfile")
        with open(pwfile, "w") as handle:
            handle.write(PASSWORD + "\n")
        if owner is not None:
            for path in (self.root, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb",
            "-D",
            self.data,
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        self.port = 0
        for _attempt in range(3):
            port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            start = ["-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", options, "start"]
            started = subprocess.run(
                [*self.prefix, self._bin("pg_ctl"), *start],
                capture_output=True,
                text=True,
            )
            if started.returncode == 0:
                self.port = port
                break
        if not self.port:
            raise RuntimeError(f"PostgreSQL did not start; see {self.log}")
        self.server = PostgresServer("127.0.0.1", self.port)
        import psycopg2

        admin = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname="postgres"
        )
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
        admin.close()

    def _bin(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    def _run(self, name: str, *args: str) -> None:
        subprocess.run(
            [*self.prefix, self._bin(name), *args], check=True, capture_output=True, text=True
        )

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, self._bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


_cluster: _Cluster | None = None
_lock = threading.Lock()


def postgres_server_or_skip() -> PostgresServer:
    """The test process's one cluster, started on first use; skips loudly without binaries."""
    global _cluster
    with _lock:
        if _cluster is None:
            try:
                import psycopg2  # noqa: F401
            except ImportError:
                pytest.skip("!!! psycopg2 is not installed: `make install` adds it (dev extra)")
            bindir = server_bindir()
            if bindir is None:
                pytest.skip(
                    "!!! NO POSTGRESQL SERVER ON THIS MACHINE: the Postgres destination tests "
                    "did not run. scripts/ensure-postgres.sh installs it (apt-get, as root)."
                )
            _cluster = _Cluster(bindir)
            atexit.register(_cluster.stop)
        return _cluster.server
