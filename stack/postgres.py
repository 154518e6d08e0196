"""A throwaway local PostgreSQL server (Debian's), the real twin of Cloud SQL for tests and benchmarks.

    with ThrowawayPostgres() as server:             # a fresh cluster on a free loopback port
        url = server.url()                          # postgresql+psycopg://buzzwatch@127.0.0.1:PORT/postgres
        other = server.create_database("bench_1")   # an empty database of its own

PostgreSQL comes from the Debian package `postgresql` (`scripts/ensure-system-packages.sh` installs it);
`find_postgres_bin` fails with a message that says so when it is missing. The cluster trusts local
connections, runs with fsync off (a throwaway: speed, not durability) and is deleted when stopped.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from stack.ports import free_port, port_is_open
from stack.processes import terminate

INITDB_GLOB = "/usr/lib/postgresql/*/bin/initdb"
USER = "buzzwatch"


class PostgresMissing(RuntimeError):
    """Debian's PostgreSQL server is not installed, or the cluster did not start."""


def find_postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin folder."""
    matches = sorted(glob.glob(INITDB_GLOB))
    if not matches:
        raise PostgresMissing(
            "PostgreSQL is not installed: apt-get install -y postgresql (scripts/ensure-system-packages.sh)"
        )
    return Path(matches[-1]).parent


class ThrowawayPostgres:
    """One PostgreSQL cluster in a temporary folder, as a context manager; `pid` is the server's."""

    def __init__(self, startup_timeout_s: float = 30.0) -> None:
        self.bin_dir = find_postgres_bin()
        self.port = free_port()
        self.startup_timeout_s = startup_timeout_s
        self.data_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return self._process.pid if self._process else None

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of a database on this server."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; its URL."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return self.url(name)

    def start(self) -> ThrowawayPostgres:
        """initdb a fresh cluster and start the server; return once it accepts connections."""
        self.data_dir = Path(tempfile.mkdtemp(prefix="buzzwatch-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            account = pwd.getpwnam("postgres")
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        cluster = str(self.data_dir / "db")
        subprocess.run(
            [*as_user, str(self.bin_dir / "initdb"), "-D", cluster, "-U", USER, "--auth=trust"],
            check=True,
            capture_output=True,
        )
        self._process = subprocess.Popen(
            [*as_user, str(self.bin_dir / "postgres"), "-D", cluster, "-p", str(self.port),
             "-k", str(self.data_dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout_s
        while not port_is_open("127.0.0.1", self.port, timeout_s=0.5):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise PostgresMissing(f"PostgreSQL did not start on 127.0.0.1:{self.port}")
            time.sleep(0.1)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and delete the cluster."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process, grace_s=timeout_s)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = ["PostgresMissing", "ThrowawayPostgres", "find_postgres_bin"]
