"""The detection service's own settings, read from the environment once, at its entry point."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from buzzwatch.partitions import DEFAULT_GROUPS, DEFAULT_PARTITIONS, check_partitions, parse_owned
from buzzwatch.settings import SettingsError, env_bool, env_float, env_int, env_str, env_url
from buzzwatch.zones import BrandsFile, brands_file
from worker.auth import IdTokenPolicy
from worker.detection import DetectorConfig

FEED_AUTH_PREFIX = "DETECTION_FEED_AUTH"
# Seen tweet ids are pruned hourly past the retention: under a day (0 forgot them all at each prune), a
# message redelivered after its checkpoint (a lost ack, a restart) could be counted twice.
MIN_SEEN_RETENTION_DAYS = 1.0
# The detection database keeps a group's owner (and the instance it is kept for) in VARCHAR(200) on
# PostgreSQL: a longer DETECTION_INSTANCE_ID failed each take of a group there.
MAX_INSTANCE_ID_CHARS = 200


def default_instance_id() -> str:
    """This process's name among the detection instances sharing a database: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _instance_id(env: Mapping[str, str]) -> str:
    """DETECTION_INSTANCE_ID (else `default_instance_id`), refused when the database cannot keep it."""
    instance_id = env_str(env, "DETECTION_INSTANCE_ID") or default_instance_id()
    if len(instance_id) > MAX_INSTANCE_ID_CHARS:
        raise SettingsError(
            f"DETECTION_INSTANCE_ID is {len(instance_id):,} characters long; at most {MAX_INSTANCE_ID_CHARS}"
        )
    return instance_id


@dataclass(frozen=True)
class DetectionSettings:
    """What the detection service reads from the environment (variables in brackets), with local defaults."""

    # DETECTION_FEED_AUTH_*: who may read the feed (worker.auth); unset: no token needed
    feed_auth: IdTokenPolicy = field(default_factory=lambda: IdTokenPolicy(FEED_AUTH_PREFIX))
    checkpoint_interval_s: float = 2.0  # DETECTION_CHECKPOINT_S: how often the service commits
    checkpoint_max_messages: int = 2000  # DETECTION_CHECKPOINT_MESSAGES: ... or after this many messages
    # DETECTION_SEEN_RETENTION_DAYS: how long tweet ids are remembered (at least MIN_SEEN_RETENTION_DAYS)
    seen_retention_days: float = 14.0
    reset_state: bool = False  # DETECTION_RESET_STATE: set a damaged database or state aside, start afresh
    health_port: int = 8081  # PORT: the health endpoint and feed
    health_host: str = "127.0.0.1"  # DETECTION_HOST: the address it binds (loopback; 0.0.0.0 in a container)
    partitions: int = DEFAULT_PARTITIONS  # BUZZWATCH_PARTITIONS: brand partitions (fixed at deploy time)
    owned_partitions: frozenset[int] | None = None  # DETECTION_PARTITIONS (e.g. 0-31): unset = every brand
    groups: int = DEFAULT_GROUPS  # BUZZWATCH_PARTITION_GROUPS: partition groups, fixed at deploy time (16, or
    # every partition its own group when there are fewer)
    # DETECTION_GROUPS: `all` takes every group nobody holds; a list (`0-3`) also asks those groups' owners to
    # hand them over (claims_groups). Unset: no groups, one subscription and this instance's own rows.
    wanted_groups: frozenset[int] | None = None
    claims_groups: bool = False
    instance_id: str = field(default_factory=default_instance_id)  # DETECTION_INSTANCE_ID
    lease_s: float = 15.0  # DETECTION_LEASE_S: a group whose owner stops renewing is free this much later
    detector: DetectorConfig = field(default_factory=DetectorConfig)  # BUZZWATCH_DETECTOR_*
    brands: BrandsFile = field(default_factory=BrandsFile)  # BUZZWATCH_BRANDS_FILE: zones, names (mails)
    app_url: str | None = (
        None  # BUZZWATCH_APP_URL: the app's address; each alert mail links its Watch it page
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DetectionSettings:
        """Read the variables above; a malformed one is a SettingsError that names it."""
        partitions = env_int(env, "BUZZWATCH_PARTITIONS", DEFAULT_PARTITIONS)
        owned = env_str(env, "DETECTION_PARTITIONS")
        try:
            check_partitions(partitions)
            owned_partitions = None if owned is None else parse_owned(owned, partitions)
        except ValueError as exc:
            raise SettingsError(f"BUZZWATCH_PARTITIONS / DETECTION_PARTITIONS: {exc}") from exc
        groups = env_int(env, "BUZZWATCH_PARTITION_GROUPS", min(DEFAULT_GROUPS, partitions))
        wanted = env_str(env, "DETECTION_GROUPS")
        if not 1 <= groups <= partitions:
            raise SettingsError(
                f"BUZZWATCH_PARTITION_GROUPS must be between 1 and {partitions}, got {groups}"
            )
        if wanted is not None and owned is not None:
            raise SettingsError("set DETECTION_GROUPS or DETECTION_PARTITIONS, not both")
        try:
            wanted_groups = None if wanted is None else parse_owned(wanted, groups)
        except ValueError as exc:
            raise SettingsError(f"DETECTION_GROUPS (groups 0-{groups - 1}): {exc}") from exc
        lease_s = env_float(env, "DETECTION_LEASE_S", cls.lease_s, maximum=3600.0)  # inf: refused
        if lease_s <= 0:
            raise SettingsError(f"DETECTION_LEASE_S must be positive, got {lease_s:g}")
        brands = BrandsFile.read(brands_file(env))
        return cls(
            feed_auth=IdTokenPolicy.from_env(env, FEED_AUTH_PREFIX),
            checkpoint_interval_s=env_float(
                env, "DETECTION_CHECKPOINT_S", cls.checkpoint_interval_s, minimum=0.1
            ),
            checkpoint_max_messages=env_int(
                env, "DETECTION_CHECKPOINT_MESSAGES", cls.checkpoint_max_messages, minimum=1
            ),
            seen_retention_days=env_float(
                env, "DETECTION_SEEN_RETENTION_DAYS", cls.seen_retention_days, minimum=MIN_SEEN_RETENTION_DAYS
            ),
            reset_state=env_bool(env, "DETECTION_RESET_STATE", cls.reset_state),
            health_port=env_int(env, "PORT", cls.health_port),
            health_host=env_str(env, "DETECTION_HOST", cls.health_host) or cls.health_host,
            partitions=partitions,
            owned_partitions=owned_partitions,
            groups=groups,
            wanted_groups=wanted_groups,
            claims_groups=wanted is not None and wanted.strip().lower() not in ("", "all"),
            instance_id=_instance_id(env),
            lease_s=lease_s,
            detector=DetectorConfig.from_env(env, brands),
            brands=brands,
            app_url=env_url(env, "BUZZWATCH_APP_URL"),
        )
