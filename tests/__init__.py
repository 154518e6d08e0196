"""BuzzWatch's tests, laid out by component: tests/X tests the top-level folder X.

`buzzwatch` (the shared core), `ingest`, `worker` (`worker/detection` mirrors the detector package), `api`,
`streamlit_app`, `models`, `notebooks`, `bench`; `delivery` tests what ships them (Dockerfiles, compose,
locks, workflows, `infra/`). Kinds are marks, not folders: `integration` (a real local server or process,
enforced by tests.support.integration), `slow`, `model`, `browser`. A helper used by one folder lives in it;
one used by more lives in `tests.support` (server fixtures in `tests.support.servers`).
"""
