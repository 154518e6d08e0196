"""Gunicorn settings for the scoring API (Cloud Run and `buzzwatch api`).

Cloud Run sets $PORT; WEB_CONCURRENCY sets the worker processes (default: one per CPU), GUNICORN_THREADS
the threads per worker. Each worker loads the model itself (no preload: ONNX Runtime sessions are not
shared across fork) and ONNX Runtime uses one thread per worker, so workers do not fight over cores.
`buzzwatch api` reads this file in its own process, which becomes the master once it has checked the
settings, the model and the database (api/server.py), so the workers fork with ONNX Runtime and SQLAlchemy
already imported; the Docker image runs `gunicorn --config api/gunicorn.conf.py`.
Access logs are off by default (GUNICORN_ACCESS_LOG=- turns them on): the API sends request latency to
telemetry instead, and a log line per request would cost more than the prediction.
"""

import os

wsgi_app = "api.app:create_app()"
bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or len(os.sched_getaffinity(0)))
worker_class = "api.gunicorn_worker.JsonErrorWorker"  # gthread, with JSON errors from gunicorn itself
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
keepalive = 75
timeout = 30
# Cloud Run kills the container 10 s after its SIGTERM: a worker still busy after 8 s is killed by the master,
# which then has time to exit itself (idle keep-alive connections are closed at once: api/gunicorn_worker.py).
graceful_timeout = 8
# No control socket (`gunicornc`, gunicorn >= 25.1): its default path is one per user (~/.gunicorn/), so
# every server on a machine shared it and a second one that failed to start deleted the first one's.
control_socket_disable = True
preload_app = False
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
proc_name = "buzzwatch-api"
