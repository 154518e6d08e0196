"""`buzzwatch api` (the scoring API under gunicorn) and `buzzwatch ui` (the Streamlit app)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from buzzwatch.cli import listen_port, port_number, positive_count
from buzzwatch.settings import DEFAULT_API_URL, http_url

API_DIR = Path(__file__).resolve().parent
REPO_ROOT = API_DIR.parent
STREAMLIT_ENTRY = REPO_ROOT / "streamlit_app" / "app.py"


def api_url(value: str) -> str:
    """An argparse type for --api-url (default $BUZZWATCH_API_URL): an http(s) address, else a clear error.

    The app took 'localhost:8080' and said on every page that the API "cannot be reached: InvalidSchema".
    """
    url = http_url(value)
    if url is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http(s) address such as {DEFAULT_API_URL} (from --api-url or "
            "$BUZZWATCH_API_URL)"
        )
    return url


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `api` and `ui` subcommands."""
    api = subparsers.add_parser(
        "api",
        help="serve the scoring API with gunicorn (the production server)",
        description=(
            "Serve POST /v1/predict, POST /v1/feedback, GET /v1/model, /healthz, /readyz and "
            "/openapi.json with gunicorn (api/gunicorn.conf.py). Model: BUZZWATCH_MODEL_URI (default: the "
            "shipped champion); feedback database: DATABASE_URL (default: SQLite under var/); "
            "admin key: BUZZWATCH_API_KEY."
        ),
    )
    api.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    api.add_argument(
        "--port",
        type=port_number,
        default=os.environ.get("PORT", "8080"),  # a string: checked only when `api` is the command
        help="port (default $PORT or 8080)",
    )
    api.add_argument(
        "--workers", type=positive_count, default=None, help="worker processes (default: one per CPU)"
    )
    api.add_argument("--threads", type=positive_count, default=None, help="threads per worker (default 4)")
    api.set_defaults(handler=run_api)

    ui = subparsers.add_parser(
        "ui",
        help="start the Streamlit app (Try it, Watch it, The model)",
        description="Start the Streamlit app; it talks to the API at --api-url (BUZZWATCH_API_URL).",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ui.add_argument("--port", type=listen_port, default=8501, help="port (default 8501)")
    ui.add_argument(
        "--api-url",
        type=api_url,
        default=os.environ.get("BUZZWATCH_API_URL", DEFAULT_API_URL),
        help=f"base URL of the scoring API (default $BUZZWATCH_API_URL or {DEFAULT_API_URL})",
    )
    ui.set_defaults(handler=run_ui)


def gunicorn_options(
    host: str, port: int, workers: int | None = None, threads: int | None = None
) -> dict[str, object]:
    """The gunicorn settings `buzzwatch api` sets over api/gunicorn.conf.py."""
    options: dict[str, object] = {"bind": [f"{host}:{port}"]}
    if workers:
        options["workers"] = workers
    if threads:
        options["threads"] = threads
    return options


def run_api(args: argparse.Namespace) -> int:
    """Check the settings, the model and the database, then become gunicorn's master in this process.

    Refused here, not as a boot-failure traceback in each gunicorn worker: bad settings, no model, a
    DATABASE_URL that cannot be read. The master is this process, not an exec of `gunicorn`, so its workers
    fork with what the check imported (ONNX Runtime, SQLAlchemy) where each imported it again (README, API
    start-up).
    """
    # ONNX Runtime 1.32 starts its telemetry uploader's thread when imported, and joins it at exit: a worker
    # forked beside that thread hung at its exit. Off before the import, in the master and so in the workers.
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    from api.server import ApiServer
    from api.settings import ApiSettings, load_predictor
    from buzzwatch.database import make_engine

    settings = ApiSettings.from_env()
    load_predictor(settings)
    make_engine(settings.common.database_url).dispose()
    os.chdir(REPO_ROOT)
    ApiServer(gunicorn_options(args.host, args.port, args.workers, args.threads)).run()
    return 0  # pragma: no cover - gunicorn's arbiter exits the process


def streamlit_command(host: str, port: int) -> list[str]:
    """The streamlit command line `buzzwatch ui` runs."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(STREAMLIT_ENTRY),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]


def run_ui(args: argparse.Namespace) -> int:
    """Replace this process with `streamlit run streamlit_app/app.py`."""
    os.environ["BUZZWATCH_API_URL"] = args.api_url
    command = streamlit_command(args.host, args.port)
    os.chdir(REPO_ROOT)
    os.execv(command[0], command)
    return 0  # pragma: no cover - execv does not return
