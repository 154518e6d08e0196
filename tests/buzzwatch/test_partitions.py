"""Brand partitions: stable across releases, spread evenly, and the settings that name them."""

from __future__ import annotations

from collections import Counter

import pytest

from buzzwatch.partitions import (
    FILTER_LIMIT_BYTES,
    format_owned,
    in_partitions,
    owned_filter,
    parse_owned,
    partition_attributes,
    partition_of,
    partitions_of,
    split_partitions,
    subscription_filter,
)


@pytest.mark.parametrize(
    ("brand", "partitions", "expected"),
    [
        # Pinned: a change here moves brands between detection instances (a state migration).
        ("united", 64, 34),
        ("delta", 64, 38),
        ("americanair", 64, 36),
        ("Lufthansa", 64, 20),
        ("zürich-air", 64, 1),
        ("united", 8, 2),
        ("delta", 8, 6),
        ("united", 1, 0),
    ],
)
def test_a_brand_has_the_same_partition_everywhere(brand: str, partitions: int, expected: int) -> None:
    assert partition_of(brand, partitions) == expected


def test_partitions_share_out_many_brands_evenly() -> None:
    counts = Counter(partition_of(f"brand{i:05d}") for i in range(6400))
    assert len(counts) == 64
    assert min(counts.values()) > 100 * 0.6 and max(counts.values()) < 100 * 1.4


@pytest.mark.parametrize("partitions", [0, -1, 1025])
def test_a_partition_count_out_of_range_is_refused(partitions: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 1024"):
        partition_of("united", partitions)


def test_a_tweet_naming_brands_of_two_partitions_is_marked_for_both() -> None:
    attributes = partition_attributes(["delta", "united", "delta"])
    assert attributes == {"partitions": "34,38", "p34": "1", "p38": "1"}
    assert partitions_of(["delta", "united"]) == (34, 38)
    assert in_partitions(attributes, {38}) and in_partitions(attributes, {0, 34})
    assert not in_partitions(attributes, {3, 35})
    assert not in_partitions({"brand": "united"}, {34})  # unmarked (published before partitions)
    assert subscription_filter(34) == "attributes:p34"


@pytest.mark.parametrize(
    ("spec", "partitions", "expected"),
    [
        ("", 8, set(range(8))),
        ("all", 8, set(range(8))),
        (" ALL ", 4, {0, 1, 2, 3}),
        ("3", 8, {3}),
        ("0-2,5", 8, {0, 1, 2, 5}),
        ("6-7, 1", 8, {1, 6, 7}),
        ("0-63", 64, set(range(64))),
    ],
)
def test_owned_partitions_are_read_from_a_setting(spec: str, partitions: int, expected: set[int]) -> None:
    assert parse_owned(spec, partitions) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("8", "outside 0-7"),
        ("5-9", "outside 0-7"),
        ("4-2", "goes down"),
        ("-1", "not a partition"),
        ("a-b", "not a partition"),
        ("1,,2", "not a partition"),
    ],
)
def test_a_bad_owned_setting_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_owned(spec, 8)


def test_the_workers_read_the_partition_settings_and_name_a_bad_one() -> None:
    from buzzwatch.settings import SettingsError
    from worker.detection_service.settings import DetectionSettings
    from worker.scoring import WorkerSettings

    assert DetectionSettings.from_env({}).owned_partitions is None  # every brand, as one instance always did
    settings = DetectionSettings.from_env({"BUZZWATCH_PARTITIONS": "8", "DETECTION_PARTITIONS": "0-3"})
    assert (settings.partitions, settings.owned_partitions) == (8, frozenset({0, 1, 2, 3}))
    assert WorkerSettings.from_env({"BUZZWATCH_PARTITIONS": "8"}).partitions == 8
    for env in ({"DETECTION_PARTITIONS": "70"}, {"BUZZWATCH_PARTITIONS": "0"}):
        with pytest.raises(SettingsError, match="DETECTION_PARTITIONS"):
            DetectionSettings.from_env(env)
    with pytest.raises(SettingsError, match="BUZZWATCH_PARTITIONS"):
        WorkerSettings.from_env({"BUZZWATCH_PARTITIONS": "0"})


@pytest.mark.parametrize("instances", [1, 2, 3, 4, 7, 64])
def test_instances_own_disjoint_contiguous_slices_covering_every_partition(instances: int) -> None:
    owned = split_partitions(instances, 64)
    assert len(owned) == instances and sorted(p for part in owned for p in part) == list(range(64))
    assert all(max(part) - min(part) == len(part) - 1 for part in owned)
    assert max(map(len, owned)) - min(map(len, owned)) <= 1
    assert [parse_owned(format_owned(part), 64) for part in owned] == owned


def test_more_instances_than_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and 8"):
        split_partitions(9, 8)


def test_owned_partitions_are_written_as_the_setting_reads_them() -> None:
    assert format_owned([5, 0, 1, 2, 7, 8, 9]) == "0-2,5,7-9"
    assert parse_owned(format_owned([5, 0, 1, 2, 7, 8, 9])) == {0, 1, 2, 5, 7, 8, 9}


def test_a_subscription_filter_is_given_only_where_pub_sub_accepts_it() -> None:
    assert owned_filter([3, 4]) == "attributes:p3 OR attributes:p4"
    assert owned_filter(range(64)) == ""  # every partition: no filter, as one instance always had
    sixteen = owned_filter(range(16))
    assert sixteen == ""  # 16 markers pass 256 bytes: the instance drops the rest itself
    fits = owned_filter(range(50, 64))  # 14 two-digit partitions: the widest set that always fits
    assert fits.count(" OR ") == 13 and len(fits.encode()) <= FILTER_LIMIT_BYTES
    assert owned_filter(range(49, 64)) == ""
