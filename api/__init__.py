"""The on-demand scoring API: Flask routes over the shared `Predictor`, the feedback store and drift alerts.

`create_app()` (in `api.app`) builds the WSGI application with its collaborators injected; gunicorn serves it
with `api/gunicorn.conf.py` (`buzzwatch api --host H --port P`). Serving never imports TensorFlow.
"""
