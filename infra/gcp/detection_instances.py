"""The detection instances of a deployment: the partitions, subscription, filter and database of each.

    PYTHONPATH=. python3 infra/gcp/detection_instances.py [--instances N] [--partitions 64]
                                                         [--subscription tweets-scored-detector]

Prints one tab-separated line per instance: Cloud Run service, DETECTION_PARTITIONS, scored subscription,
database secret, subscription filter (last, empty when none). infra/gcp/pubsub.sh makes the subscriptions
from it and the deploy workflow deploys the services from it, so both read one plan.

N = 1 (the default, `DETECTION_INSTANCES` unset) is the single service as it always was:
buzzwatch-detection owning every partition through `--subscription` (tweets-scored-detector), unfiltered,
with the `database-url` secret. With N > 1 instance i is `buzzwatch-detection-<i>`, owns the i-th
contiguous slice of the partitions (`buzzwatch.partitions.split_partitions`) through `<subscription>-<i>`,
filtered where the filter fits Pub/Sub's 256 bytes (14 partitions or fewer always do; otherwise the
instance drops the other partitions' tweets itself), and keeps its state in its own database
(`database-url-detection-<i>`, a database of the shared PostgreSQL server). This plans the static split;
partition groups, whose instances share one database and move groups between them (DETECTION_GROUPS,
worker/detection_service/groups.py), are not planned or deployed by these scripts yet.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from buzzwatch.partitions import DEFAULT_PARTITIONS, format_owned, owned_filter, split_partitions

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
    instances: int, partitions: int = DEFAULT_PARTITIONS, subscription: str = SUBSCRIPTION
) -> list[DetectionInstance]:
    """The instances; one instance is the single service of every earlier deployment."""
    if instances == 1:
        return [DetectionInstance(SERVICE, "all", subscription, DATABASE_SECRET, "")]
    return [
        DetectionInstance(
            f"{SERVICE}-{index}",
            format_owned(owned),
            f"{subscription}-{index}",
            f"{DATABASE_SECRET}-detection-{index}",
            owned_filter(owned, partitions),
        )
        for index, owned in enumerate(split_partitions(instances, partitions))
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Print the plan, one instance a line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=1, help="detection instances (DETECTION_INSTANCES)")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS, help="BUZZWATCH_PARTITIONS")
    parser.add_argument("--subscription", default=SUBSCRIPTION, help="PUBSUB_SCORED_SUBSCRIPTION (the base)")
    args = parser.parse_args(argv)
    try:
        instances = plan(args.instances, args.partitions, args.subscription)
    except ValueError as exc:
        parser.error(str(exc))
    for instance in instances:
        print(instance.line())


if __name__ == "__main__":
    main()
