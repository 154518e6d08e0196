"""Alert dispatch without the network: each alert's mail spooled under its key, its event recorded once.

Each alert goes out once per alert key, after restarts and crashes too. Dispatching an outbox row never
touches the network, so the consumer never waits on SMTP: (1) its mail is spooled under a name derived from
the alert key (`Mailer.send(..., key=)`: durable, and a no-op when that key is already pending or sent);
(2) the row is marked dispatched, by a conditional update that only one dispatch can win; (3) the winner
records the `BadBuzzAlert` event and the log line. The Mailer's own thread delivers the spool, with its
retries. A crash before (2) spools nothing new on restart and records the event then; the event comes
after the mark, so it is never recorded twice (a crash in the instant between the mark and the event loses
that event; the mail still goes). `DetectionService.dispatch_outbox` runs these steps.

Partition groups (DETECTION_GROUPS): each instance spools into its own folder (its own machine), so the
spool's once-per-key cannot stop a zombie owner (stalled, awake after its group moved) and the new owner
from both mailing a committed, unsent row. Before (1) an instance therefore claims the row
(`DetectionStore.claim_dispatch`): one transaction checks that its lease's epoch is still the group's and
sets the row's `claimed_epoch` to it, unless the row is sent or claimed by a newer epoch. A stale owner's
claim is refused (`FencedError`): it spools nothing and drops the group. It spools only while its lease
has at least `CLAIM_MARGIN_S` (0.5 s) to run, checked after the claim: until the lease runs out no other
instance can take the group. A claim by an older epoch is taken over by the new owner (the old one may have
died before spooling: the alert would be lost otherwise). What is left, a mail sent twice, needs a stall at
one of two places longer than the lease's remaining time (normally two thirds of DETECTION_LEASE_S or more,
as leases renew every third; less the clocks' disagreement between the machines):
- between the lease check after a successful claim and the spool file's link into `pending/` (rendering
  and one fsync): the new owner takes the group, claims the row with its newer epoch, spools and marks
  it; the zombie wakes and finishes its spool write; its Mailer delivers that copy too (its mark finds the
  row sent, so the event is recorded once, by the new owner);
- between the spool write and the mark (2): the new owner finds the row unsent, claims and spools it; the
  zombie's copy, already in its own spool, goes out when it wakes. A zombie that never comes back (its
  machine and spool gone) sends nothing: the new owner's copy is the only one.
Neither is detected afterwards. Single-instance mode claims nothing (`claim_dispatch` writes nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import tzinfo

from buzzwatch import telemetry as names
from buzzwatch.notify import Mailer, render_alert
from buzzwatch.schema import Alert
from buzzwatch.telemetry import Telemetry
from buzzwatch.zones import zone_of

log = logging.getLogger("buzzwatch.detection")


class AlertDispatcher:
    """Sends one alert everywhere without waiting on the network: mail spool, BadBuzzAlert event, log."""

    def __init__(
        self,
        telemetry: Telemetry,
        mailer: Mailer,
        zones: Mapping[str, tzinfo] | None = None,
        names: Mapping[str, str] | None = None,
        app_url: str | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.mailer = mailer
        self.zones = dict(zones or {})  # brand -> time zone of its mails (`BrandsFile.zones`)
        self.names = dict(names or {})  # brand -> display name in its mails (`BrandsFile.names`)
        self.app_url = app_url  # the app's address: each mail links the brand's Watch it page

    def spool(self, key: str, alert: Alert) -> None:
        """Spool the alert's mail under its key (the Mailer's thread delivers it; once per key)."""
        zone = zone_of(alert.brand, self.zones)
        subject, text_body, html_body = render_alert(alert, zone, self.names, self.app_url)
        self.mailer.send(subject, text_body, html_body, key=key)

    def announce(self, key: str, alert: Alert) -> None:
        """Record the BadBuzzAlert event (Azure or the local sink) and the log line: once, after the mark."""
        payload = alert.to_dict()
        self.telemetry.event(
            names.BAD_BUZZ_ALERT,
            {
                "brand": alert.brand,
                "kind": alert.kind,
                "episode_id": alert.episode_id,
                "window_start": payload["window_start"],
                "window_end": payload["window_end"],
                "top_terms": list(alert.top_terms),
                "reasons": dict(alert.reasons),
                "alert": payload,
            },
            {
                "negative_share": alert.negative_share,
                "baseline_share": alert.baseline_share,
                "volume": float(alert.volume),
                "score": alert.score,
            },
        )
        log.warning("BAD BUZZ ALERT", extra={"alert": payload, "alert_key": key})
