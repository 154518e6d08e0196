"""Brands hashed into a fixed number of partitions: the unit a detection instance owns.

A brand's partition is a stable hash of its name into P partitions (P fixed at deploy time,
`BUZZWATCH_PARTITIONS`, default 64): the same on every machine, in every process, in every release, so
the scoring workers that tag a scored tweet and the detection instance that counts it agree without
talking to each other. Changing P moves most brands: it is a redeployment with a state migration.

On the scored topic each message carries `partitions` (the sorted partitions of the tweet's brands,
comma-joined, like the `brand` attribute) and one marker attribute `p<k>` per partition, so a Pub/Sub
subscription filter `attributes:p<k>` (`subscription_filter`) selects a partition's tweets, a tweet that
names brands of two partitions included.

Partitions are gathered into G contiguous groups (`BUZZWATCH_PARTITION_GROUPS`, default 16, also fixed at
deploy time): the unit a detection instance takes, gives up and hands over, each group with its own
subscription (`owned_filter` of its partitions), state and ownership row (worker.detection_service.groups).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

DEFAULT_PARTITIONS = 64
DEFAULT_GROUPS = 16  # partition groups: what moves between detection instances (4 partitions each)
MAX_PARTITIONS = 1024
PARTITIONS_ATTRIBUTE = "partitions"
FILTER_LIMIT_BYTES = 256  # the longest subscription filter Pub/Sub accepts


def check_partitions(partitions: int) -> int:
    """The partition count, refused (ValueError) outside 1..MAX_PARTITIONS."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"the partition count must be between 1 and {MAX_PARTITIONS}, got {partitions}")
    return partitions


def partition_of(brand: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """The brand's partition in 0..partitions-1: BLAKE2b of its UTF-8 name, modulo the count."""
    digest = hashlib.blake2b(brand.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % check_partitions(partitions)


def partitions_of(brands: Iterable[str], partitions: int = DEFAULT_PARTITIONS) -> tuple[int, ...]:
    """The sorted, distinct partitions of these brands."""
    return tuple(sorted({partition_of(brand, partitions) for brand in brands}))


def marker(partition: int) -> str:
    """The attribute that marks a message as belonging to one partition."""
    return f"p{partition}"


def partition_attributes(brands: Iterable[str], partitions: int = DEFAULT_PARTITIONS) -> dict[str, str]:
    """The Pub/Sub attributes of a scored tweet naming these brands."""
    owned = partitions_of(brands, partitions)
    return {PARTITIONS_ATTRIBUTE: ",".join(map(str, owned)), **{marker(k): "1" for k in owned}}


def subscription_filter(partition: int) -> str:
    """The Pub/Sub subscription filter that keeps one partition's messages."""
    return f"attributes:{marker(partition)}"


def in_partitions(attributes: Mapping[str, str], owned: Iterable[int]) -> bool:
    """Whether a message's markers name one of these partitions (the check a subscription filter makes)."""
    return any(marker(k) in attributes for k in owned)


def parse_owned(spec: str, partitions: int = DEFAULT_PARTITIONS) -> frozenset[int]:
    """Partitions from a setting such as `0-15,32,40-47` (`all` or empty: every partition)."""
    check_partitions(partitions)
    text = spec.strip().lower()
    if text in ("", "all"):
        return frozenset(range(partitions))
    owned: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ValueError(f"not a partition or range: {part.strip()!r} (write e.g. 0-15,32)") from None
        if first > last:
            raise ValueError(f"the range {part.strip()!r} goes down (write the lower partition first)")
        if not 0 <= first <= last < partitions:
            raise ValueError(f"partitions {part.strip()!r} are outside 0-{partitions - 1}")
        owned.update(range(first, last + 1))
    return frozenset(owned)


def split_partitions(instances: int, partitions: int = DEFAULT_PARTITIONS) -> list[frozenset[int]]:
    """Contiguous, disjoint partition sets covering every partition, one per instance, sizes within one."""
    check_partitions(partitions)
    if not 1 <= instances <= partitions:
        raise ValueError(f"the instance count must be between 1 and {partitions}, got {instances}")
    bounds = [round(i * partitions / instances) for i in range(instances + 1)]
    return [frozenset(range(bounds[i], bounds[i + 1])) for i in range(instances)]


def group_of(partition: int, groups: int, partitions: int = DEFAULT_PARTITIONS) -> int:
    """The group (of `split_partitions(groups, partitions)`) that holds this partition."""
    for group, members in enumerate(split_partitions(groups, partitions)):
        if partition in members:
            return group
    raise ValueError(f"partition {partition} is outside 0-{partitions - 1}")


def group_subscription_name(base: str, group: int) -> str:
    """A partition group's subscription to the scored topic: `<base>-g<k>` (the base: the detection's)."""
    return f"{base}-g{group}"


def format_owned(owned: Iterable[int]) -> str:
    """Partitions as `parse_owned` reads them, runs written as ranges (`0-15,32`)."""
    runs: list[list[int]] = []
    for partition in sorted(set(owned)):
        if runs and partition == runs[-1][1] + 1:
            runs[-1][1] = partition
        else:
            runs.append([partition, partition])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


def owned_filter(owned: Iterable[int], partitions: int = DEFAULT_PARTITIONS) -> str:
    """A subscription filter keeping these partitions' messages; "" (no filter) for every partition or when
    the filter would pass Pub/Sub's 256-byte limit: the instance then drops the others itself."""
    chosen = sorted(set(owned))
    if len(chosen) >= partitions:
        return ""
    text = " OR ".join(subscription_filter(partition) for partition in chosen)
    return text if len(text.encode()) <= FILTER_LIMIT_BYTES else ""
