"""Detection scaled out by brand partition: 1, 2 and 4 instances on one stream, with loss and duplicates.

    .venv/bin/python bench/detection_scale.py [--tweets 20000] [--brands 1000] [--instances 1 2 4]
                                              [--event-minutes 30] [--no-kill] [--groups 4] [--no-groups]
                                              [--shared-store sqlite|postgresql]

One scored stream (the detection-service bench's: airline texts with their human labels, spread evenly over
the brands and `--event-minutes`, plus `--bad-buzzes` brands that get a burst of negative tweets in the
middle, so alerts exist) is published once per run to a fresh scored topic of the Pub/Sub emulator, with the
attributes the scoring worker sets (`brand`, `label`, `partitions` and one `p<k>` marker per partition).
Each run then starts N real detection services (`buzzwatch detect`), instance i owning the
i-th contiguous slice of the `BUZZWATCH_PARTITIONS` partitions (`DETECTION_PARTITIONS`), each with its own
subscription to the topic and its own SQLite database. The emulator stores subscription filters but
delivers everything (tests/worker/test_partition_subscriptions.py), so here every instance receives the
whole stream and drops the tweets of brands it does not own; on Pub/Sub a filter would spare it that work.
The clock runs from the moment every instance answers /healthz until every instance has committed the
tweets of its partitions. With the kill (default), a second 2-instance run SIGKILLs instance 0 once half
of its share is committed and starts it again on the same subscription and database: it resumes from its
last checkpoint, and what it held unacked comes again after the subscription's 10 s ack deadline.

Then two runs with partition groups (DETECTION_GROUPS, `--groups` groups, skipped with `--no-groups`): the
instances share ONE database (SQLite, or PostgreSQL with `--shared-store postgresql`) and pull one
subscription per group. "2 instances, shared database":
instance i owns the i-th half of the groups from the start. "2 instances, shared database, groups moved":
instance 0 starts alone with DETECTION_GROUPS=all and owns every group; once a third of the stream is
committed, instance 1 starts with DETECTION_GROUPS naming the second half of the groups, which instance 0
hands over mid-stream (commit, ack, release; instance 1 takes each with the next epoch and pulls the same
subscriptions). Here the seen ids are keyed by group, so "double" is the instances' counted tweets (their
/healthz, groups given up included) minus the distinct tweets stored. With the emulator every group
subscription receives the whole stream, so an instance holding k groups pulls k copies of it.

Per run it prints: tweets/s overall; the CPU of the detection processes and of the emulator per tweet, and
tweets per CPU-second of the detection processes (the throughput per core: on a 2-core machine 4 instances
cannot run faster than 2 cores allow, so this is the figure that says whether the work divides); tweets
counted per instance (from each instance's seen-id store); lost (published, counted nowhere); double-counted
(counted by two instances; an instance cannot store an id twice); counted outside the instance's
partitions; and whether the alerts in the instances' outboxes, together, equal the 1-instance run's.

Baselines, measured in the same run on the same tweets: the detector alone in one process (no Pub/Sub, no
database), and the 1-instance run itself: the single-instance ceiling through the real path.

Every tweet names one brand, so each tweet belongs to exactly one partition and "counted twice" has one
meaning; a tweet naming brands of two partitions is counted once in each (tests/worker).
Everything the bench starts (emulator, services) is stopped when it ends, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from statistics import median
from tempfile import TemporaryDirectory

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.detection_service import (  # noqa: E402
    START,
    cpu_seconds,
    detector_alone,
    drop_backlog,
    healthz,
    make_scored,
)
from buzzwatch.partitions import (  # noqa: E402
    DEFAULT_PARTITIONS,
    format_owned,
    group_of,
    partition_attributes,
    partition_of,
    split_partitions,
)
from buzzwatch.pubsub import Publisher, StreamTopology, SubscriptionSpec, ensure_subscription  # noqa: E402
from buzzwatch.schema import Alert, ScoredTweet, TweetEvent  # noqa: E402
from stack.emulator import PubSubEmulator  # noqa: E402
from stack.ports import free_port  # noqa: E402
from stack.postgres import ThrowawayPostgres  # noqa: E402
from stack.processes import terminate  # noqa: E402
from worker.detection_service.groups import group_spec, group_subscription  # noqa: E402
from worker.detection_service.store import (  # noqa: E402
    alert_outbox,
    group_owner,
    group_seen_tweets,
    read_rows,
    seen_tweets,
)

ACK_DEADLINE_S = 10  # Pub/Sub's minimum: what a killed instance held comes again this soon
RUN_NUMBERS = itertools.count()
LATENESS_VARIABLE = "BUZZWATCH_DETECTOR_LATENESS_S"
AlertKey = tuple[str, str, str, str]  # Alert.identity(): brand, kind, window start, window end


def with_bad_buzzes(
    scored: Sequence[ScoredTweet], brands: Sequence[str], event_minutes: float, per_brand: int = 200
) -> list[ScoredTweet]:
    """The stream plus, for each of `brands`, `per_brand` negative tweets over 5 minutes mid-stream."""
    start = START + timedelta(minutes=event_minutes * 0.4)
    extra = []
    for brand in brands:
        for index in range(per_brand):
            created = start + timedelta(seconds=index * 300 / per_brand)
            text = f"my bag is lost again, worst airline ever {index}"
            tweet = TweetEvent(id=f"buzz-{brand}-{index:05d}", created_at=created, text=text, brands=(brand,))
            extra.append(ScoredTweet(tweet, "negative", {"negative": 1.0}, "oracle", "Lost Luggage", created))
    return sorted([*scored, *extra], key=lambda one: (one.tweet.created_at, one.tweet.id))


@dataclass
class Instance:
    """One detection service process: its partitions, subscription, database and lives (restarts)."""

    name: str
    owned: frozenset[int]
    subscription: str
    workdir: Path
    env: dict[str, str]
    database_url: str  # its own SQLite file, or the database the instances share (partition groups)
    process: subprocess.Popen[bytes] | None = None
    cpu_s: float = 0.0  # CPU of its earlier lives (a killed process can no longer be asked)
    lives: int = 0

    def start(self) -> None:
        """Start a life and wait for its /healthz."""
        self.lives += 1
        log = open(self.workdir / "service.log", "ab")  # noqa: SIM115 - the child holds it
        command = [sys.executable, "-m", "buzzwatch.cli", "detect"]
        self.process = subprocess.Popen(command, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 120
        while healthz(int(self.env["PORT"])) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: see {self.workdir / 'service.log'}")
            time.sleep(0.05)

    def cpu(self) -> float:
        """CPU seconds over all its lives so far."""
        alive = self.process is not None and self.process.poll() is None
        return self.cpu_s + (cpu_seconds(self.process.pid) if alive and self.process else 0.0)

    def kill(self) -> None:
        """SIGKILL, as a power cut or an OOM kill would."""
        assert self.process is not None
        self.cpu_s = self.cpu()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM (its final checkpoint), then SIGKILL if it hangs."""
        if self.process is not None:
            terminate(self.process, grace_s=60)

    def counted_ids(self) -> set[str]:
        """The tweet ids its seen-id store holds: what it counted, over all its lives."""
        return {row[0] for row in read_rows(self.database_url, sa.select(seen_tweets.c.tweet_id))}

    def counted(self, table: sa.Table = seen_tweets) -> int:
        """How many tweet ids its database holds (0 before it exists); the groups' table when shared."""
        rows = read_rows(self.database_url, sa.select(sa.func.count()).select_from(table))
        return int(rows[0][0]) if rows else 0

    def alerts(self) -> list[AlertKey]:
        """The alerts in its outbox."""
        payloads = read_rows(self.database_url, sa.select(alert_outbox.c.payload))
        return [Alert.from_dict(json.loads(payload)).identity() for (payload,) in payloads]


@dataclass
class ScaleRun:
    """One run's figures."""

    label: str
    instances: int
    tweets_per_s: float
    service_cpu_ms: float  # detection processes, all instances, per tweet
    emulator_cpu_ms: float
    per_instance: list[int]
    lost: int
    double: int
    misplaced: int  # counted by an instance that does not own the tweet's partition
    redelivered: int  # duplicates the instances recognised (their last lives)
    alerts: list[AlertKey] = field(default_factory=list)
    kill_note: str = ""  # what happened mid-run: the kill, or the groups' move


def publish(project: str, topic: str, scored: Sequence[ScoredTweet], partitions: int) -> None:
    """Every tweet to the topic, with the attributes the scoring worker sets."""
    publisher = Publisher(project, topic)
    for one in scored:
        brands = one.tweet.brands
        attributes = partition_attributes(brands, partitions)
        publisher.publish(one.to_json(), brand=",".join(brands), label=one.label, **attributes)
    stats = publisher.close()
    if stats.failed:
        raise RuntimeError(f"{stats.failed} messages could not be published to the emulator")


def instance_env(
    emulator: PubSubEmulator,
    tag: str,
    index: int,
    folder: Path,
    database_url: str,
    partitions: int,
    subscription: str,
) -> dict[str, str]:
    """A detection instance's environment: the run's topic, its subscription(s), its database, no mail."""
    env = dict(
        os.environ,
        **emulator.env(),
        BUZZWATCH_VAR_DIR=str(folder),
        PORT=str(free_port()),
        LOG_LEVEL="WARNING",
        PUBSUB_SCORED_TOPIC=f"scale-scored-{tag}",
        PUBSUB_SCORED_SUBSCRIPTION=subscription,
        PUBSUB_DEAD_LETTER_TOPIC=f"scale-dead-{tag}",
        PUBSUB_DEAD_LETTER_SUBSCRIPTION=f"scale-dead-{tag}-{index}",
        BUZZWATCH_PARTITIONS=str(partitions),
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        DATABASE_URL=database_url,
    )
    for unset in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "SMTP_HOST"):
        env.pop(unset, None)
    return env


def run_instances(
    emulator: PubSubEmulator,
    scored: Sequence[ScoredTweet],
    count: int,
    partitions: int,
    workdir: Path,
    kill: bool,
) -> ScaleRun:
    """`count` instances over one topic, each owning a slice of the partitions; optionally kill one."""
    tag = f"{next(RUN_NUMBERS):03d}"
    topic = f"scale-scored-{tag}"
    owners = split_partitions(count, partitions)
    instances = []
    for index, owned in enumerate(owners):
        folder = workdir / f"run{tag}-i{index}"
        folder.mkdir()
        subscription = f"scale-detect-{tag}-{index}"
        database_url = f"sqlite:///{folder / 'detect.db'}"
        env = instance_env(emulator, tag, index, folder, database_url, partitions, subscription)
        env["DETECTION_PARTITIONS"] = format_owned(owned)
        instances.append(Instance(f"instance {index}", owned, subscription, folder, env, database_url))
    share = [
        {one.tweet.id for one in scored if partition_of(one.tweet.brands[0], partitions) in owned}
        for owned in owners
    ]
    Publisher(emulator.project, topic).close()  # the topic, so the subscriptions can be made first
    for instance in instances:
        spec = SubscriptionSpec(name=instance.subscription, topic=topic, ack_deadline_s=ACK_DEADLINE_S)
        ensure_subscription(emulator.project, spec)
    try:
        for instance in instances:
            instance.start()
        started = time.perf_counter()  # every instance is waiting: the stream starts now
        emulator_cpu = cpu_seconds(emulator.pid or 0)
        cpu_before = [instance.cpu() for instance in instances]
        publish(emulator.project, topic, scored, partitions)
        killed, kill_note = not kill, ""
        while time.perf_counter() - started < 900:
            done = [instance.counted() for instance in instances]
            if not killed and done[0] >= len(share[0]) // 2:
                instances[0].kill()
                down = time.perf_counter()
                instances[0].start()
                kill_note = (
                    f", instance 0 killed -9 at {done[0]}/{len(share[0])} committed, "
                    f"back in {time.perf_counter() - down:.1f} s"
                )
                killed = True
            if all(n >= len(mine) for n, mine in zip(done, share, strict=True)):
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        service_cpu = sum(i.cpu() - before for i, before in zip(instances, cpu_before, strict=True))
        emulator_cpu = cpu_seconds(emulator.pid or 0) - emulator_cpu
        redelivered = sum(int((healthz(int(i.env["PORT"])) or {}).get("duplicates", 0)) for i in instances)
    finally:
        for instance in instances:
            instance.stop()
        drop_backlog(emulator.project, topic, *(instance.subscription for instance in instances))
    counted = [instance.counted_ids() for instance in instances]
    union = set().union(*counted)
    published = {one.tweet.id for one in scored}
    return ScaleRun(
        label=f"{count} instance{'s' if count > 1 else ''}" + (" (kill -9 and restart)" if kill else ""),
        instances=count,
        tweets_per_s=len(union) / elapsed,
        service_cpu_ms=service_cpu * 1000 / len(scored),
        emulator_cpu_ms=emulator_cpu * 1000 / len(scored),
        per_instance=[len(ids) for ids in counted],
        lost=len(published - union),
        double=sum(len(ids) for ids in counted) - len(union),
        misplaced=sum(len(ids - mine) for ids, mine in zip(counted, share, strict=True)),
        redelivered=redelivered,
        alerts=sorted(itertools.chain.from_iterable(instance.alerts() for instance in instances)),
        kill_note=kill_note,
    )


def run_groups(
    emulator: PubSubEmulator,
    scored: Sequence[ScoredTweet],
    partitions: int,
    groups: int,
    workdir: Path,
    move: bool,
    lease_s: float,
    shared_database: Callable[[str], str],
) -> ScaleRun:
    """2 instances sharing one database through partition groups; with `move`, half the groups move from
    instance 0 (alone at first, owning all) to instance 1, started once a third of the stream is committed.
    `shared_database` gives the URL of a fresh database for a run's tag."""
    tag = f"{next(RUN_NUMBERS):03d}"
    topic = f"scale-scored-{tag}"
    database = shared_database(tag)
    halves = split_partitions(2, groups)  # instance i's groups (instance 0: all of them, first, with `move`)
    wanted = ["all" if move else format_owned(halves[0]), format_owned(halves[1])]
    topology = StreamTopology(
        project=emulator.project,
        tweets_topic=f"scale-tweets-{tag}",
        scored_topic=topic,
        dead_letter_topic=f"scale-dead-{tag}",
        scored_subscription=f"scale-detect-{tag}",
    )
    members = split_partitions(groups, partitions)
    instances = []
    for index in range(2):
        folder = workdir / f"run{tag}-i{index}"
        folder.mkdir()
        env = instance_env(emulator, tag, index, folder, database, partitions, topology.scored_subscription)
        env.update(
            BUZZWATCH_PARTITION_GROUPS=str(groups),
            DETECTION_GROUPS=wanted[index],
            DETECTION_INSTANCE_ID=f"instance-{index}",
            DETECTION_LEASE_S=f"{lease_s:g}",
        )
        owned = frozenset().union(*(members[g] for g in halves[index]))
        instances.append(Instance(f"instance {index}", owned, "", folder, env, database))
    Publisher(emulator.project, f"scale-dead-{tag}").close()
    Publisher(emulator.project, topic).close()
    for group in range(groups):  # before the first tweet, as a deployment makes them
        spec = replace(group_spec(topology, group, members[group], partitions), ack_deadline_s=ACK_DEADLINE_S)
        ensure_subscription(emulator.project, spec)
    moving = [instances[1].env["DETECTION_INSTANCE_ID"]] * len(halves[1])
    try:
        for instance in instances[: 1 if move else 2]:
            instance.start()
        started = time.perf_counter()
        emulator_cpu = cpu_seconds(emulator.pid or 0)
        cpu_before = [instance.cpu() for instance in instances[: 1 if move else 2]]
        publish(emulator.project, topic, scored, partitions)
        note, asked, moved = "", None, False
        while time.perf_counter() - started < 900:
            done = instances[0].counted(group_seen_tweets)
            if move and asked is None and done >= len(scored) // 3:
                asked = time.perf_counter()
                instances[1].start()
                cpu_before.append(instances[1].cpu())
                note = f", groups {format_owned(halves[1])} asked for at {done}/{len(scored)} committed"
            if asked is not None and not moved and owners(database, sorted(halves[1])) == moving:
                moved = True
                note += f", moved {time.perf_counter() - asked:.1f} s after instance 1 started, at {done}"
            if done >= len(scored) and (moved or not move):
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        service_cpu = sum(i.cpu() - before for i, before in zip(instances, cpu_before, strict=True))
        emulator_cpu = cpu_seconds(emulator.pid or 0) - emulator_cpu
        health = [healthz(int(i.env["PORT"])) or {} for i in instances]
    finally:
        for instance in instances:
            instance.stop()
        subscriptions = [group_subscription(topology, group) for group in range(groups)]
        drop_backlog(emulator.project, topic, *subscriptions)
    stored = read_rows(database, sa.select(group_seen_tweets.c.group_id, group_seen_tweets.c.tweet_id))
    group_of_tweet = {
        one.tweet.id: group_of(partition_of(one.tweet.brands[0], partitions), groups, partitions)
        for one in scored
    }
    union = {tweet_id for _, tweet_id in stored}
    per_instance = [int(h.get("counted", 0)) for h in health]
    payloads = read_rows(database, sa.select(alert_outbox.c.payload))
    return ScaleRun(
        label="2 instances, shared database" + (", groups moved" if move else ""),
        instances=2,
        tweets_per_s=len(union) / elapsed,
        service_cpu_ms=service_cpu * 1000 / len(scored),
        emulator_cpu_ms=emulator_cpu * 1000 / len(scored),
        per_instance=per_instance,
        lost=len({one.tweet.id for one in scored} - union),
        double=sum(per_instance) - len(stored),
        misplaced=sum(group_of_tweet.get(tweet_id) != group for group, tweet_id in stored),
        redelivered=sum(int(h.get("duplicates", 0)) for h in health),
        alerts=sorted(Alert.from_dict(json.loads(payload)).identity() for (payload,) in payloads),
        kill_note=note,
    )


def owners(database: str, groups: Sequence[int]) -> list[str | None]:
    """The owners of these groups in the shared database now."""
    rows = dict(read_rows(database, sa.select(group_owner.c.group_id, group_owner.c.owner)))
    return [rows.get(group) for group in groups]


def print_run(run: ScaleRun, reference: list[AlertKey] | None) -> None:
    """One line of the side-by-side table."""
    same = "-" if reference is None else ("yes" if run.alerts == reference else "NO")
    print(
        f"{run.label:44s} {run.tweets_per_s:8.0f} tweets/s  CPU/tweet {run.service_cpu_ms:.2f} ms "
        f"(emulator {run.emulator_cpu_ms:.2f})  {1000 / run.service_cpu_ms:6.0f} tweets per CPU-s  "
        f"per instance {'/'.join(map(str, run.per_instance))}  lost {run.lost}  double {run.double}  "
        f"outside partitions {run.misplaced}  redelivered {run.redelivered}  alerts {len(run.alerts)} "
        f"same as 1 instance: {same}{run.kill_note}",
        flush=True,
    )
    if reference is not None and run.alerts != reference:
        print(f"    only in the 1-instance run: {sorted(set(reference) - set(run.alerts))}")
        print(f"    only in this run: {sorted(set(run.alerts) - set(reference))}")


def print_medians(runs: Sequence[ScaleRun], reference: list[AlertKey] | None) -> None:
    """Per configuration: median tweets/s (range), CPU a tweet, tweets per CPU-second, and the totals."""
    print("\nmedians over the rounds:")
    for label in dict.fromkeys(run.label for run in runs):
        mine = [run for run in runs if run.label == label]
        rates = [run.tweets_per_s for run in mine]
        cpu = median(run.service_cpu_ms for run in mine)
        same = sum(run.alerts == reference for run in mine)
        print(
            f"{label:44s} {median(rates):8.0f} tweets/s (range {min(rates):.0f}-{max(rates):.0f})  "
            f"CPU/tweet {cpu:.2f} ms  {1000 / cpu:6.0f} tweets per CPU-s  lost {sum(r.lost for r in mine)}  "
            f"double {sum(r.double for r in mine)}  same alerts in {same} of {len(mine)} runs"
        )


def main(argv: Sequence[str] | None = None) -> list[ScaleRun]:
    """The baselines, then each instance count (and the kill run) side by side; the runs, for tests."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tweets", type=int, default=20000, help="background tweets (default 20000)")
    parser.add_argument("--brands", type=int, default=1000, help="brands (default 1000)")
    parser.add_argument("--bad-buzzes", type=int, default=3, help="brands given a burst of negatives")
    parser.add_argument("--event-minutes", type=float, default=30.0, help="event time the tweets span")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 4], help="instance counts")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS, help="BUZZWATCH_PARTITIONS")
    parser.add_argument("--no-kill", action="store_true", help="skip the 2-instance run with a kill -9")
    parser.add_argument("--groups", type=int, default=4, help="BUZZWATCH_PARTITION_GROUPS of the shared runs")
    parser.add_argument("--lease-s", type=float, default=6.0, help="DETECTION_LEASE_S of the shared runs")
    parser.add_argument("--no-groups", action="store_true", help="skip the shared-database runs")
    parser.add_argument(
        "--shared-store", choices=("sqlite", "postgresql"), default="sqlite", help="the shared runs' database"
    )
    parser.add_argument(
        "--lateness-s", type=float, default=300.0, help="BUZZWATCH_DETECTOR_LATENESS_S of every detector"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds (alternating); medians at the end")
    args = parser.parse_args(argv)
    os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    os.environ[LATENESS_VARIABLE] = f"{args.lateness_s:g}"
    background = make_scored(args.tweets, args.brands, args.event_minutes)
    hit = [f"brand{index:05d}" for index in range(0, args.brands, max(1, args.brands // args.bad_buzzes))]
    scored = with_bad_buzzes(background, hit[: args.bad_buzzes], args.event_minutes)
    load = os.getloadavg()
    print(
        f"{len(scored)} scored tweets ({args.brands} brands, {args.bad_buzzes} bad buzzes) over "
        f"{args.event_minutes:g} event minutes, {args.partitions} partitions, lateness tolerance "
        f"{args.lateness_s:g} s; {os.cpu_count()} CPUs, load "
        f"average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
        flush=True,
    )
    rate, cpu_ms = detector_alone(scored)
    print(f"{'baseline: detector alone':44s} {rate:8.0f} tweets/s  CPU/tweet {cpu_ms:.2f} ms", flush=True)
    counts = sorted(set(args.instances))
    plan = [(count, False) for count in counts]
    if not args.no_kill:
        plan.insert(counts.index(2) + 1 if 2 in counts else len(plan), (2, True))
    runs: list[ScaleRun] = []
    reference: list[AlertKey] | None = None
    with ExitStack() as stack:
        tmp = stack.enter_context(TemporaryDirectory(prefix="bench-scale-"))
        emulator = stack.enter_context(PubSubEmulator())
        os.environ.update(emulator.env())
        # the shared runs' database: a file, or a fresh database of Debian's PostgreSQL server (fsync off)
        server = stack.enter_context(ThrowawayPostgres()) if args.shared_store == "postgresql" else None

        def shared_database(tag: str) -> str:
            if server is None:
                return f"sqlite:///{Path(tmp) / f'run{tag}-shared.db'}"
            return server.create_database(f"scale_{tag}")

        for _ in range(max(1, args.repeat)):
            for count, kill in plan:
                run = run_instances(emulator, scored, count, args.partitions, Path(tmp), kill)
                if count == 1 and not kill and reference is None:
                    reference = run.alerts
                    print(f"{'single-instance ceiling:':44s} {run.tweets_per_s:8.0f} tweets/s (next row)")
                print_run(run, reference)
                runs.append(run)
            for move in () if args.no_groups else (False, True):
                run = run_groups(
                    emulator,
                    scored,
                    args.partitions,
                    args.groups,
                    Path(tmp),
                    move,
                    args.lease_s,
                    shared_database,
                )
                print_run(run, reference)
                runs.append(run)
    if args.repeat > 1:
        print_medians(runs, reference)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    kinds = Counter(kind for _, kind, _, _ in reference or [])
    print(f"alerts of the 1-instance run: {dict(kinds)}")
    return runs


if __name__ == "__main__":
    main()
