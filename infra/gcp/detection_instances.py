"""The detection instances of a deployment: the partitions, subscription, filter and database of each.

    PYTHONPATH=. python3 infra/gcp/detection_instances.py [--instances N] [--partitions 64]
        [--subscription tweets-scored-detector] [--mode static|groups] [--groups 16] [--subscriptions]

Prints one tab-separated line per instance: Cloud Run service, its partitions (static) or partition groups
(groups), scored subscription, database secret, subscription filter (last, empty when none). With
`--subscriptions` it prints instead the scored subscriptions to make: name, filter (last, may be empty).
infra/gcp/pubsub.sh makes the subscriptions from it, setup.sh the secrets and rights, and the deploy
workflow deploys the services from it, so all read one plan.

N = 1 (the default, `DETECTION_INSTANCES` unset) is the single service as it always was:
buzzwatch-detection owning every partition through `--subscription` (tweets-scored-detector), unfiltered,
with the `database-url` secret. With N > 1 instance i is `buzzwatch-detection-<i>`.

`--mode static` (the default, `DETECTION_MODE` unset): instance i owns the i-th contiguous slice of the
partitions (`buzzwatch.partitions.split_partitions`; DETECTION_PARTITIONS) through `<subscription>-<i>`,
filtered where the filter fits Pub/Sub's 256 bytes (14 partitions or fewer always do; otherwise the
instance drops the other partitions' tweets itself), and keeps its state in its own database
(`database-url-detection-<i>`, a database of the shared PostgreSQL server). Nothing moves between them.

`--mode groups` (`DETECTION_MODE=groups`): partition groups (worker/detection_service/groups.py). The
partitions are gathered into `--groups` groups (`BUZZWATCH_PARTITION_GROUPS`), each with its own filtered
subscription `<subscription>-g<k>`; every instance uses the one `database-url` secret (one shared
database) and claims the i-th contiguous slice of the groups (DETECTION_GROUPS; `all` with one instance),
named by its service (DETECTION_INSTANCE_ID). Its line's subscription is the base the instance derives
its groups' subscriptions from, and its filter is empty. Groups then move between the running instances
(`buzzwatch detect --move`), and a stopped instance's groups are taken by the others when its leases end.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from buzzwatch.partitions import (
    DEFAULT_GROUPS,
    DEFAULT_PARTITIONS,
    format_owned,
    group_subscription_name,
    owned_filter,
    split_partitions,
)

SERVICE = "buzzwatch-detection"
SUBSCRIPTION = "tweets-scored-detector"
DATABASE_SECRET = "database-url"


@dataclass(frozen=True)
class DetectionInstance:
    """One detection service of the deployment."""

    service: str
    owned: str  # DETECTION_PARTITIONS
    subscription: str
    database_secret: str
    filter: str

    def line(self) -> str:
        """The tab-separated line the shell scripts read (the filter last: it may be empty)."""
        return "\t".join((self.service, self.owned, self.subscription, self.database_secret, self.filter))


def plan(
    instances: int,
    partitions: int = DEFAULT_PARTITIONS,
    subscription: str = SUBSCRIPTION,
    groups: int | None = None,
) -> list[DetectionInstance]:
    """The instances (`groups`: partition-group mode); one static instance is the single service of every
    earlier deployment."""
    names = [SERVICE] if instances == 1 else [f"{SERVICE}-{index}" for index in range(instances)]
    if groups is not None:
        check_groups(groups, partitions)
        if not 1 <= instances <= groups:
            raise ValueError(
                f"the instance count must be between 1 and {groups} (the groups), got {instances}"
            )
        claimed = (
            ["all"]
            if instances == 1
            else [format_owned(part) for part in split_partitions(instances, groups)]
        )
        return [
            DetectionInstance(name, owned, subscription, DATABASE_SECRET, "")
            for name, owned in zip(names, claimed, strict=True)
        ]
    if instances == 1:
        return [DetectionInstance(SERVICE, "all", subscription, DATABASE_SECRET, "")]
    return [
        DetectionInstance(
            name,
            format_owned(owned),
            f"{subscription}-{index}",
            f"{DATABASE_SECRET}-detection-{index}",
            owned_filter(owned, partitions),
        )
        for index, (name, owned) in enumerate(
            zip(names, split_partitions(instances, partitions), strict=True)
        )
    ]


def check_groups(groups: int, partitions: int) -> None:
    """Refuse a group count the detection service would refuse (BUZZWATCH_PARTITION_GROUPS)."""
    if not 1 <= groups <= partitions:
        raise ValueError(f"the group count must be between 1 and {partitions} (the partitions), got {groups}")


def subscriptions(
    instances: int,
    partitions: int = DEFAULT_PARTITIONS,
    subscription: str = SUBSCRIPTION,
    groups: int | None = None,
) -> list[tuple[str, str]]:
    """The scored subscriptions the plan needs, (name, filter): one an instance, or one a group."""
    if groups is None:
        return [(one.subscription, one.filter) for one in plan(instances, partitions, subscription)]
    plan(instances, partitions, subscription, groups)  # the same checks
    return [
        (group_subscription_name(subscription, group), owned_filter(members, partitions))
        for group, members in enumerate(split_partitions(groups, partitions))
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Print the plan, one instance a line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=1, help="detection instances (DETECTION_INSTANCES)")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS, help="BUZZWATCH_PARTITIONS")
    parser.add_argument("--subscription", default=SUBSCRIPTION, help="PUBSUB_SCORED_SUBSCRIPTION (the base)")
    parser.add_argument("--mode", choices=("static", "groups"), default="static", help="DETECTION_MODE")
    parser.add_argument(
        "--groups",
        type=int,
        help=f"BUZZWATCH_PARTITION_GROUPS (groups mode; {DEFAULT_GROUPS} or the partitions)",
    )
    parser.add_argument(
        "--subscriptions", action="store_true", help="print the subscriptions to make: name, filter"
    )
    args = parser.parse_args(argv)
    groups = None
    if args.mode == "groups":  # the detection service's default: 16 groups, fewer with fewer partitions
        groups = args.groups or min(DEFAULT_GROUPS, args.partitions)
    try:
        if args.subscriptions:
            lines = [
                "\t".join(one)
                for one in subscriptions(args.instances, args.partitions, args.subscription, groups)
            ]
        else:
            lines = [one.line() for one in plan(args.instances, args.partitions, args.subscription, groups)]
    except ValueError as exc:
        parser.error(str(exc))
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
