"""Scan the locked dependencies for known vulnerabilities with pip-audit, or say plainly that it could not.

pip-audit asks a vulnerability database over the network (PyPI's by default) about each locked release.
When the database cannot be reached, or knows none of the packages, nothing was checked: this prints
"vulnerability scan could not run" and why, and exits 0, instead of failing the build or printing "no known
vulnerabilities" for a scan that did not happen. A real finding exits 1. requirements/dev.lock holds every
release any image or the test environment installs (requirements/lock.py checks that): it is the one scanned.

    .venv/bin/python scripts/audit_dependencies.py [LOCK]      # or: make audit
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCK = REPO_ROOT / "requirements" / "dev.lock"
COULD_NOT_RUN = "vulnerability scan could not run"


def verdict(report: dict[str, Any]) -> tuple[int, list[str]]:
    """Exit code and lines to print for a pip-audit JSON report."""
    dependencies = report.get("dependencies", [])
    skipped = [dep for dep in dependencies if dep.get("skip_reason")]
    audited = [dep for dep in dependencies if not dep.get("skip_reason")]
    vulnerable = [dep for dep in audited if dep.get("vulns")]
    lines: list[str] = []
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            lines.append(f"VULNERABLE {dep['name']}=={dep['version']}: {vuln['id']} (fixed in: {fixes})")
    if not audited:
        example = skipped[0]["skip_reason"] if skipped else "the report lists no package"
        lines.append(
            f"{COULD_NOT_RUN}: the vulnerability database answered for none of the {len(dependencies)} "
            f"locked packages (e.g. {example}); nothing was checked"
        )
        return 0, lines
    summary = f"vulnerability scan: {len(audited)} of {len(dependencies)} locked packages checked, "
    summary += f"{len(vulnerable)} with a known vulnerability"
    if skipped:
        names = ", ".join(f"{dep['name']}=={dep['version']}" for dep in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        summary += f"; NOT checked (unknown to the database): {names}{more}"
    lines.append(summary)
    return (1 if vulnerable else 0), lines


def run_pip_audit(lock: Path) -> tuple[dict[str, Any] | None, str]:
    """pip-audit's JSON report on the pinned lock (no resolving, no install), or None and why."""
    command = [
        sys.executable, "-m", "pip_audit", "--requirement", str(lock), "--no-deps", "--disable-pip",
        "--format", "json", "--progress-spinner", "off",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    try:
        return json.loads(result.stdout), ""
    except json.JSONDecodeError:
        reason = (result.stderr.strip().splitlines() or [f"pip-audit exited {result.returncode}"])[-1]
        return None, reason[:300]


def main(argv: list[str] | None = None) -> int:
    """Scan the lock given (default requirements/dev.lock) and print the verdict."""
    args = sys.argv[1:] if argv is None else argv
    lock = Path(args[0]) if args else DEFAULT_LOCK
    report, reason = run_pip_audit(lock)
    if report is None:
        print(f"{COULD_NOT_RUN}: {reason}")
        return 0
    code, lines = verdict(report)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
