"""Model-drift alerts from feedback: too many wrong predictions in a window -> one email and one event.

The counts come from the feedback table, so every API process and instance sees the same window; the
cooldown is claimed atomically in the database, so one drift episode is one alert, not one per request.
The e-mail gives counts, who sent the feedback (provenance) and prediction ids: never a text, comment or
any other value a caller sent, since anyone may send feedback on a prediction id.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from api.store import FeedbackStore
from buzzwatch.telemetry import MODEL_DRIFT_ALERT

logger = logging.getLogger(__name__)


class TelemetryLike(Protocol):
    """The part of `buzzwatch.telemetry.Telemetry` the API uses."""

    def metric(self, name: str, value: float, dimensions: dict[str, str] | None = None) -> None: ...

    def event(
        self,
        name: str,
        properties: dict[str, Any] | None = None,
        measurements: dict[str, float] | None = None,
    ) -> None: ...

    def trace(
        self, message: str, severity: str = "INFO", properties: dict[str, Any] | None = None
    ) -> None: ...


class MailerLike(Protocol):
    """The part of `buzzwatch.notify.Mailer` the API uses."""

    def send(self, subject: str, text_body: str, html_body: str, key: str | None = None) -> bool: ...

    def spooled(self, key: str) -> bool: ...


@dataclass(frozen=True)
class DriftAlert:
    """What a drift alert says."""

    fired_at: datetime
    window_s: float
    feedback_in_window: int
    wrong_in_window: int
    model_version: str
    wrong_by_provenance: dict[str, int] = field(default_factory=dict)
    latest_wrong_ids: tuple[str, ...] = ()

    @property
    def wrong_share(self) -> float:
        """Share of the window's feedback that corrected the model."""
        return self.wrong_in_window / self.feedback_in_window if self.feedback_in_window else 0.0

    def subject(self) -> str:
        """The email subject."""
        return (
            f"[BuzzWatch] Model drift: {self.wrong_in_window} wrong predictions in the last "
            f"{self.window_s / 60:.0f} min ({self.wrong_share:.0%} of feedback)"
        )

    def text_body(self) -> str:
        """The plain-text email body: counts and ids only."""
        senders = ", ".join(
            f"{count} {PROVENANCE_WORDS.get(provenance, provenance)}"
            for provenance, count in sorted(self.wrong_by_provenance.items(), key=lambda item: -item[1])
        )
        return (
            f"The sentiment model {self.model_version} was corrected {self.wrong_in_window} times out of "
            f"{self.feedback_in_window} pieces of feedback in the last {self.window_s / 60:.0f} minutes "
            f"(up to {self.fired_at.isoformat()}).\n\n"
            f"Who sent the corrections: {senders or 'not recorded'}. Anonymous feedback is rate-limited but "
            "anyone can send it; training leaves it out unless told otherwise.\n\n"
            f"Latest corrected predictions (ids): {', '.join(self.latest_wrong_ids) or 'none'}.\n\n"
            "What to do: export the feedback (GET /v1/admin/feedback.csv with the API key), look at what the "
            "model gets wrong, and retrain with `buzzwatch train --extra-data feedback.csv`.\n"
        )

    def html_body(self) -> str:
        """The HTML email body."""
        return "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in self.text_body().split("\n\n"))


PROVENANCE_WORDS = {
    "api_key": "with the API key",
    "app_token": "with the app token",
    "anonymous_by_id": "anonymous (on a prediction id the API issued)",
    "unknown": "from before provenance was recorded",
}


class DriftMonitor:
    """Checks the feedback window after each wrong prediction and fires at most once per cooldown."""

    def __init__(
        self,
        store: FeedbackStore,
        *,
        window_s: float,
        min_wrong: int,
        min_wrong_share: float,
        cooldown_s: float,
        telemetry: TelemetryLike,
        mailer: MailerLike | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.window_s = window_s
        self.min_wrong = min_wrong
        self.min_wrong_share = min_wrong_share
        self.cooldown_s = cooldown_s
        self.telemetry = telemetry
        self.mailer = mailer
        self.clock = clock

    def status(self, model_version: str) -> dict[str, Any]:
        """The window's counts of the served model's feedback and the last alert, for the admin route."""
        since = self.clock() - timedelta(seconds=self.window_s)
        total, wrong = self.store.feedback_counts_since(since, model_version)
        last = self.store.last_drift_alert()
        return {
            "model_version": model_version,
            "window_s": self.window_s,
            "feedback_in_window": total,
            "wrong_in_window": wrong,
            "min_wrong": self.min_wrong,
            "min_wrong_share": self.min_wrong_share,
            "cooldown_s": self.cooldown_s,
            "last_alert_at": None if last is None else last.isoformat().replace("+00:00", "Z"),
        }

    def check(self, model_version: str) -> DriftAlert | None:
        """Fire an alert when the window is over both thresholds and the cooldown allows it.

        The mail of a claim is keyed by the claim's time, so it goes out once whoever sends it. A claim whose
        mail never reached the spool (a full disk refused it, and then the claim's release too: a database
        write on the same disk) is not left to wait out the cooldown: the next check over the thresholds, in
        this process or another, sends that claim's alert. `model_version` is the served model's, never one
        a caller sent: only feedback on its predictions is counted (not a model's before a rollout, nor
        feedback sent by text naming another version), and it goes into the e-mail.
        """
        now = self.clock()
        since = now - timedelta(seconds=self.window_s)
        total, wrong = self.store.feedback_counts_since(since, model_version)
        if wrong < self.min_wrong or wrong < self.min_wrong_share * total:
            return None
        if not self.store.claim_drift_alert(now, self.cooldown_s):
            claimed_at = self.store.last_drift_alert()
            if claimed_at is None or self.mailer is None or self.mailer.spooled(_mail_key(claimed_at)):
                return None
            now = claimed_at  # the cooldown runs for an alert whose mail never went out: send it now
        try:
            latest_ids, by_provenance = self.store.wrong_feedback_since(since, model_version)
            alert = DriftAlert(
                now, self.window_s, total, wrong, model_version, by_provenance, tuple(latest_ids)
            )
            if not self._notify(alert):
                return None
        except Exception:  # nothing went out (a full disk refused the mail): the next wrong feedback retries
            self.store.release_drift_alert(now)
            raise
        return alert

    def _notify(self, alert: DriftAlert) -> bool:
        """The email first (spooled to disk by the mailer: it may fail), then the custom event (guarded).

        False, and no event, when another check already spooled this claim's mail.
        """
        if self.mailer is not None and not self.mailer.send(
            alert.subject(), alert.text_body(), alert.html_body(), key=_mail_key(alert.fired_at)
        ):
            return False
        self.telemetry.event(
            MODEL_DRIFT_ALERT,
            properties={
                "model_version": alert.model_version,
                "fired_at": alert.fired_at.isoformat(),
                "window_s": str(alert.window_s),
            },
            measurements={
                "wrong_in_window": float(alert.wrong_in_window),
                "feedback_in_window": float(alert.feedback_in_window),
                "wrong_share": alert.wrong_share,
            },
        )
        logger.warning(
            "model drift alert",
            extra={"wrong_in_window": alert.wrong_in_window, "feedback_in_window": alert.feedback_in_window},
        )
        return True


def _mail_key(claimed_at: datetime) -> str:
    """The mail key of the drift alert claimed at `claimed_at`: one mail per claim."""
    return f"model-drift-{claimed_at.isoformat()}"
