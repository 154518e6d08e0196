"""With Application Insights configured, the only endpoint contacted is the configured ingestion endpoint.

The Azure SDK would also send its own usage telemetry (statsbeat) to a fixed Microsoft endpoint and ask the
Azure instance metadata service (169.254.169.254) where it runs; the telemetry adapter turns both off. A
child process records every address it resolves or connects to (Python's audit hooks) while it sends a
metric, an event and a trace through the adapter to the local capture server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent(
    """
    import json, sys

    contacted = []

    def hook(event, args):
        if event == "socket.getaddrinfo":
            contacted.append(["resolve", str(args[0]), args[1]])
        elif event == "socket.connect" and isinstance(args[1], tuple):
            contacted.append(["connect", str(args[1][0]), args[1][1]])

    sys.addaudithook(hook)
    from buzzwatch.telemetry import AzureTelemetry

    telemetry = AzureTelemetry(sys.argv[1], role="endpoint-test", export_interval_s=1.0)
    telemetry.metric("tweets_scored", 3, {"brand": "acme", "label": "negative"})
    telemetry.event("BadBuzzAlert", {"brand": "acme"}, {"volume": 3.0})
    telemetry.trace("Misprediction", "WARNING", {"brand": "acme"})
    telemetry.close()
    print(json.dumps(contacted))
    """
)


def test_only_the_configured_ingestion_endpoint_is_contacted(appinsights_capture, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_")}
    env["BUZZWATCH_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, appinsights_capture.connection_string],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    contacted = json.loads(result.stdout.strip().splitlines()[-1])
    hosts = {(host, port) for _, host, port in contacted}
    assert hosts == {("127.0.0.1", appinsights_capture.port)}, hosts
    kinds = {envelope["data"]["baseType"] for envelope in appinsights_capture.envelopes}
    assert kinds == {"MetricData", "EventData", "MessageData"}
