"""Run the official Google Cloud Pub/Sub emulator as one local Java process.

The emulator ships with the Debian package `google-cloud-cli-pubsub-emulator`; it is not installable from a
registry, so `find_emulator_jar` looks for it and fails with a message that says what to install.
`PubSubEmulator` is a context manager used by the tests, the benchmarks, `buzzwatch demo` and
`buzzwatch emulator`:

    with PubSubEmulator() as emulator:          # a free loopback port, ready when the block starts
        env = {**os.environ, **emulator.env()}  # child processes' environment: their clients switch to it
        StreamTopology.from_settings(CommonSettings.from_env(env)).ensure()  # this process's clients too,
                                                # with no change to its own os.environ

A pytest fixture needs nothing more:

    @pytest.fixture(scope="session")
    def pubsub_emulator():
        with PubSubEmulator() as emulator:
            yield emulator

The emulator keeps everything in memory: a restart loses every topic, subscription and message, which
is what `restart()` is for in the recovery tests. Create topics idempotently at start-up
(`buzzwatch.pubsub.ensure_topic` and friends).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from stack.ports import free_port, port_is_open

JAR_GLOB = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar"
JAR_ENV = "PUBSUB_EMULATOR_JAR"
DEFAULT_PROJECT = "buzzwatch-local"
JAVA_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC")


class EmulatorError(RuntimeError):
    """The emulator cannot be found, started or reached."""


def find_emulator_jar(pattern: str | None = None) -> Path:
    """The emulator jar: `$PUBSUB_EMULATOR_JAR` if set, else the newest match of the Debian package path."""
    explicit = os.environ.get(JAR_ENV, "").strip()
    if explicit and pattern is None:
        path = Path(explicit)
        if not path.is_file():
            raise EmulatorError(f"{JAR_ENV}={explicit} does not point to a file")
        return path
    matches = sorted(glob.glob(pattern or JAR_GLOB))
    if not matches:
        raise EmulatorError(
            f"the Pub/Sub emulator jar was not found ({pattern or JAR_GLOB}). Install the Debian package "
            "google-cloud-cli-pubsub-emulator (it brings gcloud and the jar) or set "
            f"{JAR_ENV} to the cloud-pubsub-emulator-*-all.jar file."
        )
    return Path(matches[-1])


class PubSubEmulator:
    """One emulator process on a loopback port; `start`/`stop`/`restart`, or use it as a context manager.

    `port=0` picks a free port once; `restart()` keeps the same port, so clients configured with
    `env()` reconnect to the fresh (empty) emulator.
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        project: str = DEFAULT_PROJECT,
        jar: Path | str | None = None,
        java: str | None = None,
        log_path: Path | str | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.project = project
        self.jar = Path(jar) if jar else find_emulator_jar()
        java_path = java or shutil.which("java")
        if not java_path:
            raise EmulatorError("java was not found on PATH; the Pub/Sub emulator needs Java 11 or newer")
        self.java = java_path
        self._owns_log = log_path is None
        self.log_path = Path(log_path) if log_path else None
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """host:port, the value of PUBSUB_EMULATOR_HOST."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The Java process id while it runs."""
        return self._process.pid if self._process else None

    def env(self) -> dict[str, str]:
        """The variables that point google-cloud-pubsub (and BuzzWatch settings) at this emulator."""
        return {
            "PUBSUB_EMULATOR_HOST": self.endpoint,
            "PUBSUB_PROJECT_ID": self.project,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def command(self) -> list[str]:
        """The exact command line that runs the emulator."""
        return [
            self.java,
            *JAVA_OPTIONS,
            "-jar",
            str(self.jar),
            f"--host={self.host}",
            f"--port={self.port}",
        ]

    def is_running(self) -> bool:
        """Whether the emulator process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> PubSubEmulator:
        """Start the process and wait until its port accepts connections."""
        if self.is_running():
            return self
        if port_is_open(self.host, self.port):
            raise EmulatorError(f"port {self.endpoint} is already in use; pick another port")
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="pubsub-emulator-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # A new session makes the emulator its own process group, so stop() can end it and any child.
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout_s
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    tail = self.log_tail()
                    self._process = None
                    raise EmulatorError(f"the Pub/Sub emulator exited during start-up:\n{tail}")
                if port_is_open(self.host, self.port):
                    return self
                time.sleep(0.1)
        except KeyboardInterrupt:  # Ctrl-C or the demo's SIGTERM while it starts: no `with` will stop it
            self.stop()
            raise
        self.stop()
        raise EmulatorError(
            f"the Pub/Sub emulator did not open {self.endpoint} within {self.startup_timeout_s:.0f} s"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after `timeout_s`."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout_s)
            except ProcessLookupError:
                pass
        # Wait until the port is released, so a restart on the same port does not race the old process.
        deadline = time.monotonic() + timeout_s
        while port_is_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> PubSubEmulator:
        """Stop and start again on the same port; every topic and subscription is lost, as in real life."""
        self.stop()
        return self.start()

    def log_tail(self, max_chars: int = 2000) -> str:
        """The end of the emulator's own log, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-max_chars:]

    def close(self) -> None:
        """Stop the emulator and remove a log file this object created."""
        self.stop()
        if self._owns_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    def __enter__(self) -> PubSubEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
