"""Partition groups in one shared database: ownership rows, epochs, leases, the fence on a stale commit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from google.api_core import exceptions as api_exceptions

from buzzwatch.notify import Mailer
from buzzwatch.pubsub import StreamTopology
from buzzwatch.pubsub import topology as topology_module
from buzzwatch.schema import MAX_BRAND_CHARS, MAX_ID_CHARS, ScoredTweet
from buzzwatch.settings import CommandError, CommonSettings, SettingsError, SmtpSettings
from buzzwatch.telemetry import LocalTelemetry
from stack.postgres import ThrowawayPostgres
from tests.support.streams import START, RecordingDispatcher, background, burst, in_order
from worker.detection import DetectorConfig
from worker.detection_service import groups
from worker.detection_service.cli import request_move, show_owners
from worker.detection_service.dispatcher import AlertDispatcher
from worker.detection_service.service import DetectionService
from worker.detection_service.settings import DetectionSettings
from worker.detection_service.store import (
    DetectionStore,
    FencedError,
    GroupOwner,
    Lease,
    alert_outbox,
    group_seen_tweets,
    seen_tweets,
)

LEASE_S = 10.0
DAY = START + timedelta(hours=10)  # a daytime hour: the background's busy rate


def shared_store(url: str, groups: int = 2) -> DetectionStore:
    store = DetectionStore(url)
    store.ensure_groups(groups)
    return store


def take(store: DetectionStore, group: int, owner: str, now: float) -> Lease:
    row = store.owners()[group]
    assert row.takeable_by(owner, now)
    lease = store.acquire(row, owner, LEASE_S, now)
    assert lease is not None
    return lease


def group_service(store: DetectionStore, lease: Lease, tmp_path: Path) -> DetectionService:
    return DetectionService(
        store.for_group(lease),
        RecordingDispatcher(),  # type: ignore[arg-type]
        LocalTelemetry(tmp_path, role="detection"),
        DetectorConfig(),
    )


def payloads(tweets: list[ScoredTweet]) -> list[bytes]:
    return [one.to_json() for one in tweets]


def check_takeovers(store: DetectionStore, tmp_path: Path) -> None:
    """A group is taken with the next epoch, and only when free or kept for the taker."""
    assert store.owners()[0] == GroupOwner(0, None, 0, 0.0, None)
    first = take(store, 0, "a", now=1000.0)
    assert first == Lease(0, "a", 1)
    assert not store.owners()[0].takeable_by("b", 1005.0)  # a's lease runs until 1010
    assert store.renew(first, LEASE_S, 1005.0)
    assert not store.owners()[0].takeable_by("b", 1012.0)  # renewed until 1015
    stale = store.owners()[0]
    assert store.renew(first, LEASE_S, 1008.0)
    assert store.acquire(stale, "b", LEASE_S, 1030.0) is None  # the row changed since it was read
    second = take(store, 0, "b", now=1030.0)  # a stopped renewing: its lease ran out at 1018
    assert second == Lease(0, "b", 2)
    assert not store.renew(first, LEASE_S, 1031.0)
    assert not store.release(first, 1031.0, LEASE_S)
    # b asked to hand it over to c: released, it is kept for c a lease long, then free for anyone
    assert store.request_handover(0, "c")
    assert store.release(second, 1040.0, LEASE_S)
    kept = store.owners()[0]
    assert (kept.owner, kept.handover_to, kept.lease_until) == (None, "c", 1050.0)
    assert not kept.takeable_by("a", 1045.0) and kept.takeable_by("c", 1045.0)
    assert kept.takeable_by("a", 1051.0)
    assert take(store, 0, "c", now=1045.0) == Lease(0, "c", 3)
    assert store.owners()[0].handover_to is None
    assert store.owners()[1].owner is None  # the other group was never touched


def check_stale_commit_refused(store: DetectionStore, tmp_path: Path) -> None:
    """A zombie owner (its lease ran out, the group taken over) cannot overwrite the new owner's rows.

    Without the fence its commit would succeed: its state (which never saw the new owner's tweets) would
    replace the new owner's, and the tweets counted meanwhile would be lost from the state while their ids
    stay seen.
    """
    tweets = background(2, seed=3, brand="acme", day_rate=20)
    half = len(tweets) // 2
    zombie_lease = take(store, 0, "a", now=1000.0)
    zombie = group_service(store, zombie_lease, tmp_path / "a")
    zombie.process(payloads(tweets[:10]))
    zombie.checkpoint()
    zombie.process(payloads(tweets[10:half]))  # processed, not committed: then it stalls
    successor = group_service(store, take(store, 0, "b", now=1000.0 + LEASE_S + 1), tmp_path / "b")
    successor.process(payloads(tweets[half:]))
    successor.checkpoint()
    with pytest.raises(FencedError):
        zombie.checkpoint()
    engine = store.engine
    with engine.connect() as connection:
        seen = set(connection.execute(sa.select(group_seen_tweets.c.tweet_id)).scalars())
        assert connection.execute(sa.select(sa.func.count()).select_from(seen_tweets)).scalar_one() == 0
    assert seen == {one.tweet.id for one in tweets[:10] + tweets[half:]}
    saved = store.for_group(Lease(0, "b", 2)).load_state()
    assert saved is not None
    assert saved["stats"]["observed"] == len(seen)  # the state counted exactly the seen tweets
    assert not zombie.store.renew(zombie_lease, LEASE_S, 2000.0)


def test_each_group_keeps_its_own_state_seen_ids_and_outbox(tmp_path) -> None:
    store = shared_store(f"sqlite:///{tmp_path / 'shared.db'}")
    services = [
        group_service(store, take(store, group, "a", 1000.0), tmp_path / f"g{group}") for group in (0, 1)
    ]
    tweets = background(1, seed=4, brand="acme", day_rate=20)
    for service in services:  # the same tweet ids in both groups (a tweet naming brands of both)
        service.process(payloads(tweets))
        service.checkpoint()
    assert [service.store.counts()["tweets"] for service in services] == [len(tweets), len(tweets)]
    assert services[0].store.load_state() is not None
    assert store.load_state() is None  # the single-instance rows are untouched


def test_an_outbox_table_of_an_earlier_release_gains_its_group_column(tmp_path) -> None:
    database = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE bw_alert_outbox (alert_key VARCHAR(300) PRIMARY KEY, payload TEXT NOT NULL, "
            "created_at FLOAT NOT NULL, dispatched BOOLEAN NOT NULL)"
        )
        connection.exec_driver_sql("INSERT INTO bw_alert_outbox VALUES ('k', '{}', 1.0, 1)")
    engine.dispose()
    store = DetectionStore(f"sqlite:///{database}")
    with store.engine.connect() as connection:
        assert connection.execute(sa.select(alert_outbox.c.alert_key, alert_outbox.c.group_id)).all() == [
            ("k", None)
        ]
    store.close()


def test_an_instance_not_allowed_to_make_subscriptions_pulls_those_the_deployment_made(
    tmp_path, monkeypatch
) -> None:
    """Cloud Run's bw-detection may only pull (infra/gcp/pubsub.sh made the group subscriptions)."""

    def refused(*args: object, **kwargs: object) -> str:
        raise api_exceptions.PermissionDenied("pubsub.topics.create denied")

    monkeypatch.setattr(topology_module, "ensure_topic", refused)
    env = {
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
        "DETECTION_GROUPS": "all",
        "BUZZWATCH_PARTITION_GROUPS": "2",
    }
    store = DetectionStore(f"sqlite:///{tmp_path / 'shared.db'}")
    topology = StreamTopology.from_settings(CommonSettings.from_env(env))
    runner = groups.GroupRunner(store, DetectionSettings.from_env(env), topology, lambda *_: None)  # type: ignore[arg-type,return-value]
    runner.prepare()
    assert sorted(store.owners()) == [0, 1]  # the ownership rows are made all the same
    store.close()


def test_the_single_instance_seen_ids_are_pruned_once_not_by_each_group(tmp_path) -> None:
    """Each group's first commit prunes its own group's old ids; the runner prunes the shared single-instance
    table (read by every group's `known` after a switch to groups) once, not once a group."""
    groups_n = 4
    store = shared_store(f"sqlite:///{tmp_path / 'shared.db'}", groups_n)
    old, fresh = time.time() - 30 * 86400, time.time()
    with store.engine.begin() as connection:
        connection.execute(
            seen_tweets.insert(), [{"tweet_id": "old", "seen_at": old}, {"tweet_id": "new", "seen_at": fresh}]
        )
        connection.execute(
            group_seen_tweets.insert(),
            [{"tweet_id": f"old-{g}", "seen_at": old, "group_id": g} for g in range(groups_n)]
            + [{"tweet_id": f"new-{g}", "seen_at": fresh, "group_id": g} for g in range(groups_n)],
        )
    deletes: list[str] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def count_deletes(_conn, _cursor, statement: str, *_: object) -> None:
        if statement.startswith("DELETE FROM bw_seen_tweets"):
            deletes.append(statement)

    env = {
        "DETECTION_GROUPS": "all",
        "BUZZWATCH_PARTITION_GROUPS": str(groups_n),
        "DETECTION_INSTANCE_ID": "a",
    }
    settings = DetectionSettings.from_env(env)
    topology = StreamTopology.from_settings(CommonSettings.from_env({}))

    make_service = service_factory(tmp_path, settings)
    runner = groups.GroupRunner(store, settings, topology, make_service)
    runner.look()  # takes the groups
    assert sorted(runner.owned) == list(range(groups_n))
    for owned in runner.owned.values():
        owned.consumer.commit()  # a group's first commit prunes
    runner.look()  # within the hour: no second prune
    with store.engine.connect() as connection:
        assert set(connection.execute(sa.select(seen_tweets.c.tweet_id)).scalars()) == {"new"}
        left = set(connection.execute(sa.select(group_seen_tweets.c.tweet_id)).scalars())
    assert left == {f"new-{g}" for g in range(groups_n)}
    assert len(deletes) == 1, deletes
    store.close()


def test_detection_groups_settings() -> None:
    assert DetectionSettings.from_env({}).wanted_groups is None  # no groups: one instance, as before
    every = DetectionSettings.from_env({"DETECTION_GROUPS": "all", "BUZZWATCH_PARTITION_GROUPS": "4"})
    assert (every.wanted_groups, every.claims_groups) == (frozenset(range(4)), False)
    some = DetectionSettings.from_env({"DETECTION_GROUPS": "1-2", "BUZZWATCH_PARTITION_GROUPS": "4"})
    assert (some.wanted_groups, some.claims_groups) == (frozenset({1, 2}), True)
    with pytest.raises(SettingsError, match="DETECTION_GROUPS"):
        DetectionSettings.from_env({"DETECTION_GROUPS": "4", "BUZZWATCH_PARTITION_GROUPS": "4"})
    with pytest.raises(SettingsError, match="not both"):
        DetectionSettings.from_env({"DETECTION_GROUPS": "all", "DETECTION_PARTITIONS": "0-3"})
    with pytest.raises(SettingsError, match="BUZZWATCH_PARTITION_GROUPS"):
        DetectionSettings.from_env({"BUZZWATCH_PARTITION_GROUPS": "65"})


def test_the_move_command_asks_the_owner_for_the_groups(tmp_path, capsys) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}", "BUZZWATCH_PARTITION_GROUPS": "4"}
    assert request_move(env, "1-2", "b") == 0
    store = DetectionStore(env["DATABASE_URL"])
    assert [row.handover_to for row in store.owners().values()] == [None, "b", "b", None]
    store.close()
    assert "group 2: owner (none), handover to b requested" in capsys.readouterr().out
    with pytest.raises(CommandError, match=r"--move: .*\(groups 0-3\)"):
        request_move(env, "7", "b")
    with pytest.raises(CommandError, match="give both"):
        request_move(env, "1", None)
    assert show_owners(env, now=100.0) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "group 1: owner (none), epoch 0, lease expired, handover to b"
    assert len(lines) == 4


def check_single_instance_state_moves_to_groups(store: DetectionStore, tmp_path: Path) -> None:
    """Switching an existing database to DETECTION_GROUPS: each group starts from the single instance's state
    (its own brands only) and knows its seen ids; its first commit makes every one of its rows its own."""
    tweets = in_order(
        background(1, seed=5, brand="acme", day_rate=50, start=DAY)
        + background(1, seed=6, brand="globex", day_rate=50, start=DAY)
    )
    assert len(tweets) > 50
    single = DetectionService(
        store, RecordingDispatcher(), LocalTelemetry(tmp_path / "single", role="detection"), DetectorConfig()
    )  # type: ignore[arg-type]
    single.process(payloads(tweets))
    single.checkpoint()
    saved = store.load_state()
    assert saved is not None and set(saved["brands"]) == {"acme", "globex"}
    lease = take(store, 0, "a", now=1000.0)
    view = store.for_group(lease, lambda brand: brand == "acme")
    group = DetectionService(
        view, RecordingDispatcher(), LocalTelemetry(tmp_path / "g0", role="detection"), DetectorConfig()
    )  # type: ignore[arg-type]
    assert group.detector.brands == ("acme",)
    assert group.detector.brand_state_dict("acme") == single.detector.brand_state_dict("acme")
    group.process(payloads(tweets[:50]))  # redelivered: already counted before the switch
    assert group.pending.duplicates == 50 and not group.pending.ids
    group.checkpoint()
    again = store.for_group(lease).load_state()  # no fallback needed any more: the group's own rows
    assert again is not None and set(again["brands"]) == {"acme"}
    assert again["brands"]["acme"] == saved["brands"]["acme"]
    # the single instance's ids are forgotten at the retention like the group's own: by the instance's
    # store (once, for every group: `GroupRunner`), the group's by its own
    assert view.prune(-1.0) == 0 and view.known(one.tweet.id for one in tweets)
    assert store.prune(-1.0) == len(tweets) and not view.known(one.tweet.id for one in tweets)


def check_the_longest_id_a_tweet_may_have_is_counted_once(store: DetectionStore, tmp_path: Path) -> None:
    """The seen-id column is VARCHAR(64) on PostgreSQL; a tweet id of up to 128 characters passed the schema,
    and one over 64 failed every checkpoint there (the batch redelivered and failing again: the stream
    stopped). Every id the schema takes is stored and known on redelivery, with and without groups."""
    tweets = in_order(background(0.2, seed=7, brand="acme", day_rate=50, start=DAY))[:3]
    longest = [
        ScoredTweet.from_dict({**one.to_dict(), "id": f"{index}".ljust(MAX_ID_CHARS, "x")})
        for index, one in enumerate(tweets)
    ]
    single = DetectionService(
        store, RecordingDispatcher(), LocalTelemetry(tmp_path / "single", role="detection"), DetectorConfig()
    )  # type: ignore[arg-type]
    single.process(payloads(longest[:2]))
    single.checkpoint()
    assert store.known(one.tweet.id for one in longest) == {longest[0].tweet.id, longest[1].tweet.id}
    view = store.for_group(take(store, 0, "a", now=1000.0))
    group = DetectionService(
        view, RecordingDispatcher(), LocalTelemetry(tmp_path / "g0", role="detection"), DetectorConfig()
    )  # type: ignore[arg-type]
    group.process(payloads(longest))
    assert group.pending.duplicates == 2 and group.pending.ids == [longest[2].tweet.id]
    group.checkpoint()
    assert view.known(one.tweet.id for one in longest) == {one.tweet.id for one in longest}


def check_an_alert_of_the_longest_brand_a_tweet_may_name_is_stored(
    store: DetectionStore, tmp_path: Path
) -> None:
    """An alert's key (its brand and times) is VARCHAR(300) on PostgreSQL; a brand of 280 characters passed
    the schema, and once it alerted every checkpoint failed there: the whole stream stopped."""
    brand = "b" * MAX_BRAND_CHARS
    tweets = in_order(
        background(3, seed=5, brand=brand, day_rate=20, start=DAY)
        + burst(DAY + timedelta(hours=2.5), 10, 30, brand=brand)
    )
    dispatcher = RecordingDispatcher()
    service = DetectionService(
        store, dispatcher, LocalTelemetry(tmp_path, role="detection"), DetectorConfig()
    )  # type: ignore[arg-type]
    service.process(payloads(tweets))
    service.checkpoint()
    assert dispatcher.sent and {alert.brand for alert in dispatcher.sent} == {brand}


def check_a_tweet_whose_id_or_brand_holds_a_nul_is_skipped_alone(
    store: DetectionStore, tmp_path: Path
) -> None:
    """PostgreSQL text holds no NUL, and the schema took one in an id or a brand: the seen-id lookup of the
    pull batch holding such a tweet failed, and so did each redelivery of it, its good tweets with it."""
    tweets = in_order(background(0.5, seed=5, brand="acme", day_rate=20, start=DAY))[:6]
    poison = [
        replace(tweets[0], tweet=replace(tweets[0].tweet, id="nul\x00id")),
        replace(tweets[1], tweet=replace(tweets[1].tweet, brands=("ac\x00me",))),
    ]
    service = DetectionService(
        store, RecordingDispatcher(), LocalTelemetry(tmp_path, role="detection"), DetectorConfig()
    )  # type: ignore[arg-type]
    service.process(payloads(poison + tweets[2:]))
    service.checkpoint()
    assert store.known(one.tweet.id for one in tweets) == {one.tweet.id for one in tweets[2:]}


def check_stale_owner_spools_no_alert(store: DetectionStore, tmp_path: Path) -> None:
    """A committed, unsent alert is mailed once when a zombie owner and the new owner both dispatch it.

    Each instance spools into its own folder (its own machine), so the spool's once-per-key cannot tell
    them apart: the zombie, which read the outbox before it stalled, must fail its claim (epoch check).
    """
    tweets = in_order(
        background(1, seed=1, brand="acme", day_rate=50, start=DAY)
        + burst(DAY + timedelta(minutes=35), 5, 40, brand="acme", prefix="acme-burst")
    )
    now = time.time()
    mailers = {name: Mailer(SmtpSettings.from_env({}), tmp_path / name / "mail-spool") for name in "ab"}

    def instance(lease: Lease) -> DetectionService:
        telemetry = LocalTelemetry(tmp_path / lease.owner, role="detection")
        dispatcher = AlertDispatcher(telemetry, mailers[lease.owner])
        return DetectionService(store.for_group(lease), dispatcher, telemetry, DetectorConfig())

    def mails(name: str) -> list[str]:
        return sorted(path.name for path in mailers[name].outbox_dir.glob("*.eml"))

    zombie = instance(take(store, 0, "a", now=now - 2 * LEASE_S))  # its lease has run out since
    zombie.process(payloads(tweets))
    assert zombie.pending.alerts
    zombie._commit()  # committed; it stalls before dispatching (crash point alert-committed)
    assert zombie.dispatch_outbox() == 0 and mails("a") == []  # claimed, but its lease has run out
    successor = instance(take(store, 0, "b", now=now))
    read_before_the_stall = zombie.store.undispatched
    assert len(read_before_the_stall()) == zombie.totals["alerts"] > 0

    def outbox_read_then_stalled() -> list:
        rows = read_before_the_stall()
        assert successor.dispatch_outbox() == len(rows)  # the new owner sends while the zombie sleeps
        return rows

    zombie.store.undispatched = outbox_read_then_stalled  # type: ignore[method-assign]
    refused: FencedError | None = None
    try:
        zombie.dispatch_outbox()
    except FencedError as exc:
        refused = exc
    assert mails("a") == []  # the zombie spooled nothing (without the claim: the same mails as b's)
    assert refused is not None and "alert dispatch refused" in str(refused)
    sent = mails("b")
    assert len(sent) == zombie.totals["alerts"] and store.for_group(Lease(0, "b", 2)).undispatched() == []
    assert successor.dispatch_outbox() == 0 and mails("b") == sent
    with store.engine.connect() as connection:
        claims = connection.execute(sa.select(alert_outbox.c.claimed_epoch, alert_outbox.c.dispatched)).all()
    assert claims and set(claims) == {(2, True)}


CHECKS: list[Callable[[DetectionStore, Path], None]] = [
    check_takeovers,
    check_stale_commit_refused,
    check_stale_owner_spools_no_alert,
    check_single_instance_state_moves_to_groups,
    check_the_longest_id_a_tweet_may_have_is_counted_once,
    check_an_alert_of_the_longest_brand_a_tweet_may_name_is_stored,
    check_a_tweet_whose_id_or_brand_holds_a_nul_is_skipped_alone,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_on_sqlite(check: Callable[[DetectionStore, Path], None], tmp_path: Path) -> None:
    check(shared_store(f"sqlite:///{tmp_path / 'shared.db'}"), tmp_path)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_on_postgresql(
    check: Callable[[DetectionStore, Path], None], postgres_server: ThrowawayPostgres, tmp_path: Path
) -> None:
    """The same on the production database: its row locks, float compare-and-set and ALTER TABLE."""
    store = shared_store(postgres_server.create_database(f"groups_{uuid.uuid4().hex[:10]}"))
    try:
        check(store, tmp_path)
    finally:
        store.close()


def test_two_revisions_with_one_instance_id_hand_the_groups_over_once(tmp_path) -> None:
    """A rollout runs the old and the new revision with the same DETECTION_INSTANCE_ID (the service's
    name). The new one takes the groups at its start (the old owner's row is its own name); the old one
    then lost them, took them back at its next look (its own name again), and so on at every look until it
    stopped: each move reloaded the state and handed its held messages back."""
    store = DetectionStore(f"sqlite:///{tmp_path / 'shared.db'}")
    env = {"DETECTION_GROUPS": "all", "BUZZWATCH_PARTITION_GROUPS": "2", "DETECTION_INSTANCE_ID": "svc"}
    settings = DetectionSettings.from_env(env)
    topology = StreamTopology.from_settings(CommonSettings.from_env({}))
    store.ensure_groups(settings.groups)

    make_service = service_factory(tmp_path, settings)
    old = groups.GroupRunner(store, settings, topology, make_service)
    old.look()
    assert sorted(old.owned) == [0, 1]
    new = groups.GroupRunner(store, settings, topology, make_service)
    new.look()  # a restart of "svc" as far as it can tell: its rows, taken at once
    assert sorted(new.owned) == [0, 1]
    for _ in range(3):
        old.look()
        new.look()
    assert old.owned == {} and sorted(new.owned) == [0, 1]
    assert {row.epoch for row in store.owners().values()} == {2}  # taken once each by the new revision
    store.close()


def service_factory(
    tmp_path: Path, settings: DetectionSettings
) -> Callable[[DetectionStore, frozenset[int]], DetectionService]:
    """How the entry point builds a group's service, with a recording dispatcher and a local sink."""

    def make_service(group_store: DetectionStore, members: frozenset[int]) -> DetectionService:
        return DetectionService(
            group_store,
            RecordingDispatcher(),  # type: ignore[arg-type]
            LocalTelemetry(tmp_path, role="detection"),
            DetectorConfig(),
            owned_partitions=members,
            partitions=settings.partitions,
        )

    return make_service
