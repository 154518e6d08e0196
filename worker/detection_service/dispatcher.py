"""Alert dispatch without the network: each alert's mail spooled under its key, its event recorded once.

Each alert goes out once per alert key, after restarts and crashes too. Dispatching an outbox row never
touches the network, so the consumer never waits on SMTP: (1) its mail is spooled under a name derived from
the alert key (`Mailer.send(..., key=)`: durable, and a no-op when that key is already pending or sent);
(2) the row is marked dispatched, by a conditional update that only one dispatch can win; (3) the winner
records the `BadBuzzAlert` event and the log line. The Mailer's own thread delivers the spool, with its
retries. A crash before (2) spools nothing new on restart and records the event then; the event comes
after the mark, so it is never recorded twice (a crash in the instant between the mark and the event loses
that event; the mail still goes). `DetectionService.dispatch_outbox` runs these steps.
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
    ) -> None:
        self.telemetry = telemetry
        self.mailer = mailer
        self.zones = dict(zones or {})  # brand -> time zone of its mails (`buzzwatch.zones.brand_zones`)
        self.names = dict(names or {})  # brand -> display name in its mails (`buzzwatch.zones.brand_names`)

    def spool(self, key: str, alert: Alert) -> None:
        """Spool the alert's mail under its key (the Mailer's thread delivers it; once per key)."""
        subject, text_body, html_body = render_alert(alert, zone_of(alert.brand, self.zones), self.names)
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
