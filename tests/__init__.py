"""BuzzWatch's tests, laid out by component: tests/X tests the top-level folder X, tests/X/Y its package X/Y.

`buzzwatch` (the shared core), `ingest`, `worker` (with `worker/detection` and `worker/detection_service`),
`api`, `streamlit_app`, `stack`, `models`, `notebooks`, `bench`; `delivery` tests what ships them
(Dockerfiles, compose, locks, workflows, `infra/`). Kinds are marks, not folders: `integration` (a real local
server or process, enforced by tests.support.integration), `slow`, `model`, `browser`. A helper used by one
folder lives in it; one used by more lives in `tests.support` (server fixtures in `tests.support.servers`).
"""
