"""`buzzwatch demo`: the whole local stream on embedded defaults, replaying real tweets with a bad buzz.

What runs (every piece is the real one, as separate processes where production has separate services):
the official Pub/Sub emulator with the topics and subscriptions (a push subscription to the worker, a
dead-letter topic), the scoring worker (granian, the push route), the single detection service, an SMTP sink
(aiosmtpd; mails saved as .eml files) or the outbox, and the ingester replaying a file built here.

The replay file is made deterministically from the real US airline tweets in data/airline_us: `--tweets`
real tweets (a seeded sample, in the sample's shuffled order) spread evenly over six hours of event time,
so each brand's volume and negative share are steady (the file's own week, squeezed into six hours, would
turn its daily rhythm and its real storms into alerts of their own), plus a bad buzz: 90 real negative
United tweets about cancelled flights within twelve minutes, five hours in. The detector runs its
production defaults (a brand is watched from its first minutes). The replay runs at `--speed` times event
time (150 by default: about two and a half minutes), so delivery jitter stays well inside the detector's
lateness tolerance (600 s of event time here).

The printed alerts and the summary say which alert is the injected bad buzz (its brand, while its tweets
are in the alert's window) and which come from the real tweets around it.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from buzzwatch.pubsub import StreamTopology
from buzzwatch.replay import open_replay_csv
from buzzwatch.schema import format_timestamp, parse_timestamp
from buzzwatch.settings import REPO_ROOT, CommonSettings
from buzzwatch.telemetry import read_alerts, read_local
from ingest.brands import BrandBook
from stack.emulator import PubSubEmulator
from stack.ports import free_port, port_is_open
from stack.processes import (
    Children,
    answers_ok,
    health_report,
    sigterm_interrupts,
    start_command,
    stopping,
    wait_until,
)

AIRLINE_DATA = REPO_ROOT / "data" / "airline_us" / "train.csv"
EPISODE_AIRLINE = "United"
EPISODE_REASON = "Cancelled Flight"
EPISODE_TWEETS = 90
EVENT_HOURS = 6.0
EPISODE_START_HOURS = 5.0
EPISODE_MINUTES = 12
DEMO_START = datetime(2015, 2, 23, 6, 0, tzinfo=UTC)
LATENESS_S = 600
API_PORT = 19080  # when free: the API and the app of `--with-api --with-ui`
UI_PORT = 8501
FRONTEND_NAMES = {"api": "API", "ui": "Streamlit app"}
INJECTED = "injected bad buzz"
FOUND = "found in the real tweets, not injected"


@dataclass(frozen=True)
class DemoOptions:
    """The demo's command-line options."""

    tweets: int = 3000
    speed: str = "150"
    outbox: bool = False
    with_api: bool = False
    with_ui: bool = False
    keep_running: bool = False


def build_demo_replay(path: Path, tweets: int, source: Path = AIRLINE_DATA, seed: int = 7) -> dict[str, Any]:
    """Write the replay CSV (id, created_at, text, brand, label, negativereason); returns what is in it.

    The file is also a `buzzwatch replay --oracle` input. Returned: tweet counts, the brands, and the
    injected episode (`episode_brand`, `episode_start`, `episode_end`, ISO 8601).
    """
    book = BrandBook.load()
    with open(source, newline="", encoding="utf-8") as handle:
        unique = {
            r["id"]: r for r in csv.DictReader(handle) if r.get("text") and r.get("id") and r.get("airline")
        }
    rows = sorted(unique.values(), key=lambda r: (r["created_at"], r["id"]))  # one tweet is one id
    episode_pool = [
        r
        for r in rows
        if r["airline"] == EPISODE_AIRLINE
        and r["label"] == "negative"
        and r["negativereason"] == EPISODE_REASON
    ]
    episode = episode_pool[-EPISODE_TWEETS:]  # the latest ones
    episode_ids = {r["id"] for r in episode}
    background = [r for r in rows if r["id"] not in episode_ids]
    # A seeded shuffle, kept in that order: every brand's volume and share are steady over the six hours.
    random.Random(seed).shuffle(background)
    background = background[:tweets]
    span_s = EVENT_HOURS * 3600
    out: list[dict[str, str]] = []
    for index, row in enumerate(background):
        moment = DEMO_START + timedelta(seconds=index * span_s / max(1, len(background)))
        out.append(_row(row, moment, book.resolve(row["airline"])))
    episode_start = DEMO_START + timedelta(hours=EPISODE_START_HOURS)
    step_s = EPISODE_MINUTES * 60 / max(1, len(episode))
    for index, row in enumerate(episode):
        out.append(_row(row, episode_start + timedelta(seconds=index * step_s), book.resolve(row["airline"])))
    out.sort(key=lambda r: (r["created_at"], r["id"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(out[0]) if out else ["id"])
        writer.writeheader()
        writer.writerows(out)
    return {
        "tweets": len(out),
        "episode_tweets": len(episode),
        "episode_brand": book.resolve(EPISODE_AIRLINE),
        "episode_start": format_timestamp(episode_start),
        "episode_end": format_timestamp(episode_start + timedelta(minutes=EPISODE_MINUTES)),
        "brands": dict(Counter(r["brand"] for r in out)),
    }


def _row(row: dict[str, str], moment: datetime, brand: str) -> dict[str, str]:
    return {
        "id": row["id"],
        "created_at": format_timestamp(moment),
        "text": row["text"],
        "brand": brand,
        "label": row["label"],
        "negativereason": row.get("negativereason", ""),
    }


def detector_env() -> dict[str, str]:
    """The detector settings of the demo (environment variables of the detection service).

    The production defaults, but for the lateness tolerance: no warm-up is switched off, a brand is
    watched from its first minutes (the detector starts from its shipped prior).
    """
    return {"BUZZWATCH_DETECTOR_LATENESS_S": str(LATENESS_S)}


def origin(alert: Mapping[str, Any], content: Mapping[str, Any]) -> str:
    """INJECTED when the alert is the injected episode's (its brand, its tweets in the window), else FOUND."""
    overlaps = parse_timestamp(alert["window_start"]) <= parse_timestamp(
        content["episode_end"]
    ) and parse_timestamp(alert["window_end"]) >= parse_timestamp(content["episode_start"])
    return INJECTED if alert["brand"] == content["episode_brand"] and overlaps else FOUND


def summary_lines(
    alerts: Sequence[Mapping[str, Any]], content: Mapping[str, Any], replay_rows: Sequence[Mapping[str, str]]
) -> list[str]:
    """The summary lines on alerts: the injected episode's (and how soon the first came), then the others,
    each with what the replay's human labels say of its window."""
    by_origin: dict[str, list[Mapping[str, Any]]] = {INJECTED: [], FOUND: []}
    for alert in alerts:
        by_origin[origin(alert, content)].append(alert)
    injected = by_origin[INJECTED]
    lines = [f"  alerts: {len(alerts)}"]
    if injected:
        delay = parse_timestamp(injected[0]["fired_at"]) - parse_timestamp(content["episode_start"])
        lines.append(
            f"    {INJECTED} ({content['episode_brand']}, from {content['episode_start']}): "
            f"{len(injected)} alert(s), the first {delay.total_seconds() / 60:.1f} min of event time after "
            "it started: " + ", ".join(_alert_name(a) for a in injected)
        )
    else:
        lines.append(
            f"    {INJECTED} ({content['episode_brand']}, from {content['episode_start']}): NOT alerted"
        )
    found = by_origin[FOUND]
    lines.append(f"    {FOUND}: {len(found) or 'none'}")
    for alert in found:
        window, overall = labelled_shares(replay_rows, alert)
        lines.append(
            f"      {_alert_name(alert)}: the replay's human labels say {window:.0%} negative in its window, "
            f"{overall:.0%} over the whole replay (a real bad buzz shows a clear gap)"
        )
    return lines


def labelled_shares(rows: Sequence[Mapping[str, str]], alert: Mapping[str, Any]) -> tuple[float, float]:
    """The negative share of the alert's brand by the file's human labels: in its window, and overall."""
    start, end = parse_timestamp(alert["window_start"]), parse_timestamp(alert["window_end"])
    brand = [r for r in rows if r["brand"] == alert["brand"]]
    window = [r for r in brand if start <= parse_timestamp(r["created_at"]) <= end]

    def share(selected: Sequence[Mapping[str, str]]) -> float:
        return sum(r["label"] == "negative" for r in selected) / len(selected) if selected else 0.0

    return share(window), share(brand)


def _alert_name(alert: Mapping[str, Any]) -> str:
    return f"{alert['brand']} {alert['kind']} at {alert['fired_at']}"


def _alert_line(alert: dict[str, Any], content: Mapping[str, Any]) -> str:
    reasons = sorted((alert.get("reasons") or {}).items(), key=lambda item: -item[1])[:3]
    return (
        f"  ALERT ({alert['kind']}, {origin(alert, content)}) {alert['brand']}: "
        f"{alert['negative_share']:.0%} negative vs baseline "
        f"{alert['baseline_share']:.0%}, {alert['volume']} tweets, "
        f"{alert['window_start']} - {alert['window_end']}"
        f"\n    terms: {', '.join(alert['top_terms'][:8]) or '-'}; hashtags: "
        f"{', '.join(alert.get('top_hashtags', [])[:5]) or '-'}; reasons: "
        + (", ".join(f"{reason} {share:.0%}" for reason, share in reasons) or "-")
    )


class _MailFolderSink:
    """An aiosmtpd handler that saves each mail as .eml and prints its subject."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes

        self.count += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{self.count:03d}.eml").write_bytes(envelope.content)
        subject = " ".join(str(message_from_bytes(envelope.content).get("Subject", "")).split())
        print(f"  [mail] to {', '.join(envelope.rcpt_tos)}: {subject}", flush=True)
        return "250 OK"


def _port(preferred: int) -> int:
    """The preferred port when it is free (a stable URL to open), else any free one."""
    return free_port() if port_is_open("127.0.0.1", preferred) else preferred


def frontend_commands(
    options: DemoOptions, api_port: int, ui_port: int
) -> list[tuple[str, list[str], str, str]]:
    """The API and app processes asked for: name, `buzzwatch` arguments, URL, path answering 200 when ready.

    The app talks to the API the demo starts, on the port the demo chose.
    """
    api_url, ui_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"
    commands: list[tuple[str, list[str], str, str]] = []
    if options.with_api:
        commands.append(("api", ["api", "--host", "127.0.0.1", "--port", str(api_port)], api_url, "/readyz"))
    if options.with_ui:
        ui = ["ui", "--host", "127.0.0.1", "--port", str(ui_port)]
        if options.with_api:
            ui += ["--api-url", api_url]
        commands.append(("ui", ui, ui_url, "/_stcore/health"))
    return commands


def run_demo(options: DemoOptions) -> int:
    """Run the stack, replay, print alerts as they fire, then a summary; stops everything on exit."""
    settings = CommonSettings.from_env()
    demo_dir = settings.var_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    logs = demo_dir / "logs"
    logs.mkdir(parents=True)
    replay = demo_dir / "replay.csv"
    content = build_demo_replay(replay, options.tweets)
    print(
        f"BuzzWatch demo: {content['tweets']} real airline tweets over {EVENT_HOURS:.0f} h of event time, "
        f"with an injected bad buzz of {content['episode_tweets']} real {EPISODE_AIRLINE} tweets about "
        f"cancelled flights from {content['episode_start']} to {content['episode_end']}",
        flush=True,
    )
    print(f"  state and logs under {demo_dir}", flush=True)
    env = dict(os.environ)
    env.update(detector_env())
    env.update(
        BUZZWATCH_VAR_DIR=str(demo_dir / "var"),
        DETECTION_CHECKPOINT_S="1",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    processes: Children = []
    controller = None
    mail_dir = demo_dir / "mail"
    try:
        with (
            sigterm_interrupts(),
            PubSubEmulator(log_path=logs / "emulator.log") as emulator,
            stopping(processes),
        ):
            env.update(emulator.env())  # the children's and the topology's; this process's stays as it was
            if options.outbox:
                env.pop("SMTP_HOST", None)
                mail_dir = demo_dir / "var" / "outbox"
            else:
                sink = _MailFolderSink(mail_dir)
                controller = Controller(sink, hostname="127.0.0.1", port=free_port())
                controller.start()
                env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(controller.port))
            worker_port = free_port()
            endpoint = f"http://127.0.0.1:{worker_port}/pubsub/push"
            env["PUBSUB_PUSH_ENDPOINT"] = endpoint
            topology = StreamTopology.from_settings(CommonSettings.from_env(env))
            topology.ensure(push_endpoint=endpoint)
            print(f"  Pub/Sub emulator on {emulator.endpoint}; push subscription -> {endpoint}", flush=True)
            worker = start_command(
                "worker",
                ["worker", "--mode", "push", "--host", "127.0.0.1", "--port", str(worker_port)],
                env,
                logs,
            )
            processes.append(("worker", worker))
            wait_until(
                lambda: answers_ok(f"http://127.0.0.1:{worker_port}/readyz"), 90, "the scoring worker", worker
            )
            api_port, ui_port = _port(API_PORT), _port(UI_PORT)
            frontends = frontend_commands(options, api_port, ui_port)
            detection_port = free_port()
            detection_env = dict(env, PORT=str(detection_port))
            if options.with_ui:  # the mails link the app the demo serves
                detection_env["BUZZWATCH_APP_URL"] = f"http://127.0.0.1:{ui_port}"
            detection = start_command("detection", ["detect"], detection_env, logs)
            processes.append(("detection", detection))
            detection_health = f"http://127.0.0.1:{detection_port}/healthz"
            wait_until(lambda: answers_ok(detection_health), 90, "detection", detection)
            print("  scoring worker (push) and detection service ready", flush=True)
            for name, args, url, ready_path in frontends:
                process = start_command(name, args, env, logs)
                processes.append((name, process))
                wait_until(lambda url=url + ready_path: answers_ok(url), 90, f"the {name}", process)
                print(f"  {FRONTEND_NAMES[name]} on {url}", flush=True)

            started = time.monotonic()
            ingest = start_command(
                "ingest",
                ["ingest", "--source", "replay", "--input", str(replay), "--speed", options.speed],
                env,
                logs,
            )
            processes.append(("ingest", ingest))
            print(f"  replaying at speed {options.speed} ...", flush=True)
            var_dir = demo_dir / "var"
            shown = 0
            counted, last_count, stable_since = 0, -1, time.monotonic()
            while True:
                alerts = read_alerts(var_dir)
                for alert in alerts[shown:]:
                    print(_alert_line(alert, content), flush=True)
                shown = len(alerts)
                # What the detection service says it has counted (committed, once each) since it started.
                counted = int((health_report(detection_health) or {"counted": counted}).get("counted", 0))
                if counted != last_count:
                    last_count, stable_since = counted, time.monotonic()
                ingest_done = ingest.poll() is not None
                if ingest_done and (counted >= content["tweets"] or time.monotonic() - stable_since > 15):
                    break
                if options.keep_running and ingest_done:
                    time.sleep(1)
                    continue
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            time.sleep(2)  # the last checkpoint dispatches its alerts
            alerts = read_alerts(var_dir)
            scored = Counter()
            for record in read_local(var_dir, "metrics", name="tweets_scored"):
                scored[record["dimensions"].get("label", "?")] += record["value"]
            print("\nSummary", flush=True)
            print(f"  tweets replayed: {content['tweets']}; counted once: {counted} ({elapsed:.0f} s)")
            print(f"  labels: {dict((k, int(v)) for k, v in scored.items())}")
            with open_replay_csv(replay) as records:
                replay_rows = [record.values for record in records]
            for line in summary_lines(alerts, content, replay_rows):
                print(line)
            print(f"  mails: {mail_dir}")
            print(f"  telemetry sink: {var_dir / 'telemetry'}; logs: {logs}", flush=True)
            injected = any(origin(alert, content) == INJECTED for alert in alerts)
            code = 0 if counted >= content["tweets"] and injected else 1
            if options.keep_running or options.with_api or options.with_ui:
                print("\nThe stack stays up (API and app included, when asked for) until Ctrl-C", flush=True)
                try:
                    while True:
                        time.sleep(1)
                except KeyboardInterrupt:
                    print("\nstopping ...", flush=True)
            return code
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 130
    finally:
        if controller is not None:
            controller.stop()
