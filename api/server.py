"""gunicorn's arbiter inside `buzzwatch api`'s own process (the Docker image's CMD runs `gunicorn` itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gunicorn import util
from gunicorn.app.base import Application

GUNICORN_CONFIG = Path(__file__).resolve().parent / "gunicorn.conf.py"


class ApiServer(Application):
    """api/gunicorn.conf.py, then $GUNICORN_CMD_ARGS over it, then `options` over both.

    The order the `gunicorn` command applies them in; the command line of this process (`buzzwatch api ...`)
    is not gunicorn's, so it is not parsed.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__(prog="buzzwatch api")

    def load_config(self) -> None:
        """Read the config file, then the settings of $GUNICORN_CMD_ARGS and the command's over it."""
        self.load_config_from_file(str(GUNICORN_CONFIG))
        from_env = vars(self.cfg.parser().parse_args(self.cfg.get_cmd_args_from_env()))
        for name, value in from_env.items():
            if value is not None and name != "args":
                self.cfg.set(name, value)
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        """The WSGI app the config names, built in each worker (`preload_app` is off)."""
        return util.import_app(self.cfg.wsgi_app)
