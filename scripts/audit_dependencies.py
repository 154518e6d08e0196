"""Scan the locked dependencies for known vulnerabilities with pip-audit, or say plainly that it could not.

pip-audit asks a vulnerability database over the network about each locked release: PyPI's per-release JSON
(its default), else OSV, tried in that order. When neither answers for any package, nothing was checked:
this prints "vulnerability scan could not run", why for each, and what to do, instead of printing "no known
vulnerabilities" for a scan that did not happen; it exits 0 (a machine without those databases, like this
project's: its registry access serves the package index, not the per-release JSON, and OSV is not reached),
or 3 with AUDIT_REQUIRED=1 (where the databases are reachable, as in GitHub's CI, a scan that cannot run
fails). A real finding exits 1. requirements/dev.lock holds every release any image or the test environment
installs (requirements/lock.py checks that): it is the one scanned.

    .venv/bin/python scripts/audit_dependencies.py [LOCK]      # or: make audit
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCK = REPO_ROOT / "requirements" / "dev.lock"
COULD_NOT_RUN = "vulnerability scan could not run"
SERVICES = ("pypi", "osv")  # pip-audit's vulnerability databases, in the order tried
NOT_ON_PYPI = "Dependency not found on PyPI"  # pip-audit's skip reason when PyPI has no JSON for a release
WHAT_TO_DO = (
    "to scan, run `make audit` on a machine that reaches PyPI's per-release JSON API or OSV directly (a "
    "developer machine with internet access; GitHub's CI runs it with AUDIT_REQUIRED=1)"
)


def nothing_checked(report: dict[str, Any]) -> str | None:
    """Why a pip-audit JSON report checked no package, or None when it checked some."""
    dependencies = report.get("dependencies", [])
    if not dependencies:
        return "the report lists no package"
    if any(not dep.get("skip_reason") for dep in dependencies):
        return None
    first = dependencies[0]
    if all(dep["skip_reason"].startswith(NOT_ON_PYPI) for dep in dependencies):
        return (
            f"'not found' for all {len(dependencies)} locked releases (e.g. "
            f"{first['skip_reason'].rpartition(': ')[2]}): the per-release JSON is not served where this "
            "machine reaches PyPI"
        )
    return f"it answered for none of the {len(dependencies)} locked packages (e.g. {first['skip_reason']})"


def verdict(report: dict[str, Any]) -> tuple[int, list[str]]:
    """Exit code and lines to print for a pip-audit JSON report that checked some packages."""
    dependencies = report.get("dependencies", [])
    skipped = [dep for dep in dependencies if dep.get("skip_reason")]
    audited = [dep for dep in dependencies if not dep.get("skip_reason")]
    vulnerable = [dep for dep in audited if dep.get("vulns")]
    lines: list[str] = []
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            lines.append(f"VULNERABLE {dep['name']}=={dep['version']}: {vuln['id']} (fixed in: {fixes})")
    summary = f"vulnerability scan: {len(audited)} of {len(dependencies)} locked packages checked, "
    summary += f"{len(vulnerable)} with a known vulnerability"
    if skipped:
        names = ", ".join(f"{dep['name']}=={dep['version']}" for dep in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        summary += f"; NOT checked (unknown to the database): {names}{more}"
    lines.append(summary)
    return (1 if vulnerable else 0), lines


def run_pip_audit(lock: Path, service: str) -> tuple[dict[str, Any] | None, str]:
    """pip-audit's JSON report on the pinned lock from `service` (no resolving, no install), or None, why."""
    command = [
        sys.executable, "-m", "pip_audit", "--requirement", str(lock), "--no-deps", "--disable-pip",
        "--format", "json", "--progress-spinner", "off", "--vulnerability-service", service,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    try:
        return json.loads(result.stdout), ""
    except json.JSONDecodeError:
        reason = (result.stderr.strip().splitlines() or [f"pip-audit exited {result.returncode}"])[-1]
        error = reason.split(":", 1)[0].rpartition(".")[2]  # requests' exception, when it is one
        if error in ("ConnectionError", "ProxyError", "ConnectTimeout", "SSLError"):
            return None, f"cannot be reached from here ({error})"
        return None, reason[:300]


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Scan the lock given (default requirements/dev.lock) and print the verdict."""
    args = sys.argv[1:] if argv is None else argv
    env = dict(os.environ) if env is None else env
    lock = Path(args[0]) if args else DEFAULT_LOCK
    reasons = []
    for service in SERVICES:
        report, reason = run_pip_audit(lock, service)
        if report is not None:
            unchecked = nothing_checked(report)
            if unchecked is None:
                code, lines = verdict(report)
                print("\n".join([f"vulnerability database: {service}", *lines]))
                return code
            reason = unchecked
        reasons.append(f"{service}: {reason}")
    print(f"{COULD_NOT_RUN}, nothing was checked ({'; '.join(reasons)}); {WHAT_TO_DO}")
    return 3 if env.get("AUDIT_REQUIRED") == "1" else 0


if __name__ == "__main__":
    sys.exit(main())
