"""The whole resolved dependency set is locked with hashes and installed from the locks; an honest audit."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from .dockerfiles import IMAGES
from .helpers import REPO_ROOT
from .test_dockerfiles import load_script

AUDIT = REPO_ROOT / "scripts" / "audit_dependencies.py"


def test_every_lock_agrees_with_the_pins_and_hashes_every_entry():
    locks = load_script("requirements/lock.py")
    assert locks.problems() == []
    dev = locks.read_lock(locks.DEV_LOCK)
    assert {"tensorflow-cpu", "onnxruntime", "pytest", "pytest-xdist", "pip-audit", "grpcio"} <= set(
        dev
    )  # grpcio: transitive
    for image in IMAGES:
        entries = locks.read_lock(REPO_ROOT / image.lock)
        assert all(entry.hashes for entry in entries.values()), image.lock


def test_a_pin_that_moves_is_caught(tmp_path, monkeypatch):
    locks = load_script("requirements/lock.py")
    stale = tmp_path / "api.lock"
    text = (REPO_ROOT / "requirements" / "api.lock").read_text()
    stale.write_text(re.sub(r"^flask==\S+", "flask==0.1", text, flags=re.MULTILINE))
    monkeypatch.setattr(locks, "lock_targets", lambda: {stale: REPO_ROOT / "requirements" / "api.txt"})
    assert any("flask is not locked" in problem for problem in locks.problems())
    assert any(
        problem.startswith("api.lock: flask==0.1 differs from dev.lock") for problem in locks.problems()
    )


def test_an_entry_without_hashes_is_caught(tmp_path, monkeypatch):
    locks = load_script("requirements/lock.py")
    unhashed = tmp_path / "api.lock"
    text = (REPO_ROOT / "requirements" / "api.lock").read_text()
    unhashed.write_text(re.sub(r"^(flask==\S+) \\\n(?:\s+--hash=\S+(?: \\)?\n)+", r"\1\n", text, flags=re.M))
    monkeypatch.setattr(locks, "lock_targets", lambda: {unhashed: REPO_ROOT / "requirements" / "api.txt"})
    assert [p for p in locks.problems() if "flask" in p] == [
        f"api.lock: flask=={locks.read_lock(unhashed)['flask'].version} has no hash"
    ]


def test_a_package_required_with_an_extra_and_locked_without_it_is_caught(tmp_path, monkeypatch):
    """pip-audit requires `CacheControl[filecache]`: locked as a bare `cachecontrol==0.14.4`, pip
    --require-hashes refused the whole install once cachecontrol 0.15.0 was out (CI, 2026-12-07)."""
    locks = load_script("requirements/lock.py")
    assert "cachecontrol[filecache]==" in locks.DEV_LOCK.read_text()
    bare = tmp_path / "dev.lock"
    bare.write_text(locks.DEV_LOCK.read_text().replace("cachecontrol[filecache]==", "cachecontrol=="))
    monkeypatch.setattr(locks, "DEV_LOCK", bare)
    monkeypatch.setattr(locks, "lock_targets", dict)
    assert locks.problems() == ["dev.lock: cachecontrol is required with [filecache], locked without"]


def test_make_ci_and_images_install_the_locked_set():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements/dev.lock" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile
    assert "--upgrade" not in makefile  # nothing unpinned
    ci = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    runs = [step.get("run", "") for step in ci["jobs"]["test"]["steps"]]
    assert any(run.startswith("make test") for run in runs)
    assert any(run.startswith("make audit") for run in runs)
    assert "make audit" in (REPO_ROOT / ".ci" / "run").read_text()
    retrain = (REPO_ROOT / ".github" / "workflows" / "retrain.yml").read_text()
    assert "--require-hashes -r requirements/train.lock" in retrain
    for image in IMAGES:
        assert f"--require-hashes -r {image.lock}" in (REPO_ROOT / image.dockerfile).read_text()


def test_make_test_runs_the_serial_tests_alone_first_then_the_rest_in_two_processes():
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    recipe = lines[lines.index("test: $(STAMP)") + 1 :]
    recipe = recipe[: next(i for i, line in enumerate(recipe) if not line.startswith("\t"))]
    assert [line.strip() for line in recipe if " -m pytest" in line] == [
        "$(BIN)/python -m pytest -m serial",
        '$(BIN)/python -m pytest -m "not serial" -n 2 --dist loadfile',
    ]


def test_the_audit_verdicts():
    audit = load_script("scripts/audit_dependencies.py")
    found = {"name": "flask", "version": "0.1", "vulns": [{"id": "PYSEC-1", "fix_versions": ["3.1.3"]}]}
    clean = {"name": "numpy", "version": "2.4.6", "vulns": []}
    unknown = {"name": "emoji", "version": "2.16.0", "skip_reason": "Dependency not found on PyPI"}
    code, lines = audit.verdict({"dependencies": [found, clean, unknown]})
    assert code == 1 and "VULNERABLE flask==0.1: PYSEC-1 (fixed in: 3.1.3)" in lines
    assert "NOT checked (unknown to the database): emoji==2.16.0" in lines[-1]
    code, lines = audit.verdict({"dependencies": [clean, unknown]})
    assert code == 0 and lines == [
        "vulnerability scan: 1 of 2 locked packages checked, 0 with a known vulnerability; "
        "NOT checked (unknown to the database): emoji==2.16.0"
    ]
    assert audit.nothing_checked({"dependencies": [clean, unknown]}) is None
    assert audit.nothing_checked({"dependencies": []}) == "the report lists no package"
    not_served = {
        "name": "absl-py",
        "skip_reason": "Dependency not found on PyPI and could not be audited: absl-py (2.5.1)",
    }
    assert audit.nothing_checked({"dependencies": [not_served, not_served]}) == (
        "'not found' for all 2 locked releases (e.g. absl-py (2.5.1)): the per-release JSON is not "
        "served where this machine reaches PyPI"
    )


@pytest.mark.parametrize("required", ["", "1"], ids=["here", "AUDIT_REQUIRED"])
def test_the_audit_says_it_could_not_run_when_the_database_is_unreachable(required: str):
    """Both databases tried, each one's reason and what to do said; exit 3 where the scan is required."""
    closed = "http://127.0.0.1:9"  # nothing listens: the database cannot be reached
    env = {**os.environ, "HTTPS_PROXY": closed, "HTTP_PROXY": closed, "https_proxy": closed}
    env.update(AUDIT_REQUIRED=required)
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    result = subprocess.run(
        [sys.executable, str(AUDIT), str(REPO_ROOT / "requirements" / "ingest.lock")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == (3 if required else 0), result.stderr
    line = result.stdout
    assert line.startswith("vulnerability scan could not run, nothing was checked (pypi: cannot be"), line
    assert "; osv: cannot be reached from here" in line
    assert "to scan, run `make audit` on a machine that reaches" in line
    assert "No known vulnerabilities" not in line
