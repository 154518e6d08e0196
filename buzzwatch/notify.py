"""Email that is never lost: spooled to disk first, sent over SMTP with retries, queued while SMTP is down.

    mailer = Mailer.from_settings(settings)          # or Mailer(settings.smtp, spool_dir)
    mailer.send(subject, text_body, html_body)       # True when delivered (or written to the outbox)
    mailer.close()                                   # one last delivery attempt, stops the retry thread

Each message is written as an RFC 5322 `.eml` file into `<spool_dir>/pending/` (fsync + rename) before any
network I/O, so a crash or an SMTP outage leaves it on disk. `send` then tries to deliver the spool, with
a short exponential backoff; what is still pending afterwards is retried by a background thread (backoff up
to `max_backoff_s`) and by every later `send` or `flush`, including after a restart of the process.
A message the server refuses for good (5xx on the recipients or data) moves to `<spool_dir>/failed/` and is
logged at ERROR: kept, not retried forever. Several processes may share one spool: a message is claimed
with an exclusive file lock while it is sent.

With no SMTP host configured, messages go to the outbox folder (`<var_dir>/outbox/*.eml` through
`from_settings`), where a person or a test can read them.

`render_alert(alert)` writes a bad-buzz alert as a mail for a social-media team: subject, plain text
and HTML with the same content (who, when, how bad against usual, volume, the terms and hashtags that
stand out, why people are angry, representative tweets with their copy counts).
"""

from __future__ import annotations

import fcntl
import html
import logging
import os
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from buzzwatch.schema import Alert
from buzzwatch.settings import CommonSettings, SmtpSettings

logger = logging.getLogger(__name__)

PERMANENT_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPNotSupportedError)
REASONS_SHOWN = 4  # the rest of the negative reasons are summed as "other reasons"
NO_TERMS = "none stands out against the brand's usual tweets"


class Mailer:
    """Sends email through SMTP (STARTTLS, SSL and login optional), spooled on disk and retried."""

    def __init__(
        self,
        settings: SmtpSettings,
        spool_dir: Path | str,
        outbox_dir: Path | str | None = None,
        attempts: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        background_retry: bool = True,
    ) -> None:
        self.settings = settings
        self.spool_dir = Path(spool_dir)
        self.outbox_dir = Path(outbox_dir) if outbox_dir else self.spool_dir.parent / "outbox"
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.background_retry = background_retry
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._retry_thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: CommonSettings, **options: Any) -> Mailer:
        """The spool under `<var_dir>/mail-spool`, the outbox under `<var_dir>/outbox`."""
        return cls(settings.smtp, settings.var_dir / "mail-spool", settings.var_dir / "outbox", **options)

    @property
    def pending_dir(self) -> Path:
        """Messages waiting for delivery."""
        return self.spool_dir / "pending"

    @property
    def failed_dir(self) -> Path:
        """Messages the server refused for good (kept for a person to look at)."""
        return self.spool_dir / "failed"

    def pending(self) -> list[Path]:
        """The queued messages, oldest first."""
        if not self.pending_dir.is_dir():
            return []
        return sorted(self.pending_dir.glob("*.eml"))

    def build_message(self, subject: str, text_body: str, html_body: str | None = None) -> EmailMessage:
        """A multipart/alternative message (plain text first, HTML preferred by clients that show it)."""
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.settings.sender
        message["To"] = ", ".join(self.settings.recipients)
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain="buzzwatch.local")
        # Quoted-printable keeps every line under SMTP's 998-character limit (HTML is often one long line).
        message.set_content(text_body, cte="quoted-printable")
        if html_body:
            message.add_alternative(html_body, subtype="html", cte="quoted-printable")
        return message

    def send(self, subject: str, text_body: str, html_body: str | None = None) -> bool:
        """Spool, then deliver; False: queued for retry (or refused for good and kept in `failed/`)."""
        if not self.settings.recipients:
            raise ValueError("no alert recipients configured (ALERT_EMAIL_TO)")
        message = self.build_message(subject, text_body, html_body)
        path = self._spool(message)
        if self.settings.host is None:
            return self._to_outbox(path)
        delay = self.backoff_s
        for attempt in range(self.attempts):
            self.flush()
            if not path.exists():
                return not (self.failed_dir / path.name).exists()
            if attempt + 1 < self.attempts:
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
        logger.warning(
            "SMTP unavailable: mail queued for retry",
            extra={"subject": subject, "spool_file": str(path), "queued": len(self.pending())},
        )
        self._ensure_retry_thread()
        return False

    def _spool(self, message: EmailMessage) -> Path:
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
        temporary = self.pending_dir / f".{name}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(message.as_bytes(policy=SMTP_POLICY))  # CRLF line ends, as SMTP wants
            handle.flush()
            os.fsync(handle.fileno())
        final = self.pending_dir / name
        os.replace(temporary, final)
        return final

    def _to_outbox(self, path: Path) -> bool:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.outbox_dir / path.name)
        logger.info(
            "mail written to the outbox (no SMTP host)", extra={"path": str(self.outbox_dir / path.name)}
        )
        return True

    def flush(self) -> int:
        """Try once to deliver every queued message; returns how many are still pending."""
        if self.settings.host is None:
            for path in self.pending():
                self._to_outbox(path)
            return 0
        with self._flush_lock:
            queued = self.pending()
            if not queued:
                return 0
            try:
                connection = self._connect()
            except (OSError, smtplib.SMTPException) as exc:
                logger.info("SMTP connection failed", extra={"error": str(exc), "queued": len(queued)})
                return len(queued)
            try:
                for path in queued:
                    if not self._deliver_one(connection, path):
                        break
            finally:
                try:
                    connection.quit()
                except (OSError, smtplib.SMTPException):
                    connection.close()
        return len(self.pending())

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        assert settings.host is not None
        if settings.use_ssl:
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_s, context=ssl.create_default_context()
            )
        else:
            connection = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
            if settings.starttls:
                connection.starttls(context=ssl.create_default_context())
        if settings.username:
            connection.login(settings.username, settings.password or "")
        return connection

    def _deliver_one(self, connection: smtplib.SMTP, path: Path) -> bool:
        """Send one spooled file under an exclusive lock; False when the connection is no longer usable."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - the lock lives as long as the handle
        except FileNotFoundError:
            return True  # another process delivered it
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True  # another process is sending it right now
            if not path.exists():
                return True
            data = handle.read()
            try:
                refused = connection.sendmail(self.settings.sender, list(self.settings.recipients), data)
            except PERMANENT_ERRORS as exc:
                self._fail(path, exc)
                return True
            except smtplib.SMTPDataError as exc:
                if exc.smtp_code >= 500:
                    self._fail(path, exc)
                    return True
                return False
            except (OSError, smtplib.SMTPException) as exc:
                logger.info(
                    "SMTP send failed; mail stays queued", extra={"error": str(exc), "path": str(path)}
                )
                return False
            path.unlink(missing_ok=True)
            if refused:
                logger.error(
                    "some recipients were refused", extra={"refused": sorted(refused), "path": path.name}
                )
            logger.info("mail delivered", extra={"path": path.name})
            return True

    def _fail(self, path: Path, exc: Exception) -> None:
        self.failed_dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.failed_dir / path.name)
        logger.error(
            "SMTP server refused the mail for good; kept in the failed folder",
            extra={"error": str(exc), "path": str(self.failed_dir / path.name)},
        )

    def _ensure_retry_thread(self) -> None:
        if not self.background_retry or self._stop.is_set():
            return
        with self._thread_lock:
            if self._retry_thread is not None and self._retry_thread.is_alive():
                return
            self._retry_thread = threading.Thread(target=self._retry_loop, name="mail-retry", daemon=True)
            self._retry_thread.start()

    def _retry_loop(self) -> None:
        delay = self.backoff_s
        while not self._stop.wait(delay):
            if self.flush() == 0:
                return
            delay = min(delay * 2, self.max_backoff_s)

    def close(self, final_attempt: bool = True) -> int:
        """Stop the retry thread and try once more; returns how many messages stay queued on disk."""
        self._stop.set()
        thread = self._retry_thread
        if thread is not None:
            thread.join(timeout=self.settings.timeout_s + 5)
        remaining = self.flush() if final_attempt else len(self.pending())
        if remaining:
            logger.warning("mails still queued on disk at shutdown", extra={"queued": remaining})
        return remaining


def _when(alert: Alert) -> str:
    """The window in words, e.g. '23 Feb 2015, 10:56-11:10 UTC (14 min)'."""
    start, end = alert.window_start.astimezone(UTC), alert.window_end.astimezone(UTC)
    minutes = max(1, round((end - start).total_seconds() / 60))
    first = f"{start.day} {start:%b %Y}, {start:%H:%M}"
    last = f"{end:%H:%M}" if end.date() == start.date() else f"{end.day} {end:%b %Y}, {end:%H:%M}"
    return f"{first}-{last} UTC ({minutes} min)"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _reason_rows(reasons: Mapping[str, float]) -> list[tuple[str, str]]:
    """(share, reason) of the main negative reasons, largest first; the rest summed as 'other reasons'."""
    ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    rows = [(f"{share:.0%}", _capitalised(reason)) for reason, share in ranked[:REASONS_SHOWN]]
    rest = sum(share for _, share in ranked[REASONS_SHOWN:])
    return rows + ([(f"{rest:.0%}", "other reasons")] if rest > 0 else [])


def _sample_rows(alert: Alert) -> list[tuple[str, str]]:
    """(text, notes) of each representative tweet; notes: its reason and how often it was posted."""
    rows = []
    for sample in alert.samples:
        notes = [_capitalised(str(sample["reason"]))] if sample.get("reason") else []
        copies = int(sample.get("group_size") or 1)
        if copies > 1:
            notes.append(f"posted {copies} times (retweets and copies)")
        rows.append((str(sample.get("text", "")), "; ".join(notes)))
    return rows


def _by_authors(alert: Alert) -> str:
    """' from N people' when the authors are known: a crowd, or a few loud voices."""
    if alert.authors is None:
        return ""
    return f" from {alert.authors} {'person' if alert.authors == 1 else 'people'}"


def render_alert(alert: Alert) -> tuple[str, str, str]:
    """Subject, plain text and HTML of a bad-buzz alert email (the same content in both bodies)."""
    headline = "Bad buzz" if alert.kind == "new" else "Bad buzz growing"
    subject = (
        f"[BuzzWatch] {headline}: {alert.brand}: {alert.negative_share:.0%} negative "
        f"(usually {alert.baseline_share:.0%}), {alert.volume} tweets"
    )
    how_bad = (
        f"{alert.negative_share:.0%} of the tweets are negative, against {alert.baseline_share:.0%} usually."
    )
    expected = f"{alert.baseline_volume:.0f}"
    facts = [
        ("When", _when(alert)),
        ("Volume", f"{alert.volume} tweets{_by_authors(alert)} (about {expected} expected in that time)"),
        ("Terms", ", ".join(alert.top_terms) or NO_TERMS),
        ("Hashtags", ", ".join(alert.top_hashtags) or NO_TERMS),
    ]
    reasons = _reason_rows(alert.reasons)
    samples = _sample_rows(alert)
    news = "A new bad buzz" if alert.kind == "new" else "An update: this bad buzz was alerted before and grew"
    footer = f"{news} (episode {alert.episode_id}); spike score {alert.score:.1f}."
    copies_note = "Retweets and copies are shown once, with how many times they were posted."
    title = f"{headline} on {alert.brand}"
    return (
        subject,
        _text_body(f"{title}: {how_bad}", facts, reasons, samples, copies_note, footer),
        _html_body(title, how_bad, facts, reasons, samples, copies_note, footer),
    )


def _text_body(
    lead: str,
    facts: list[tuple[str, str]],
    reasons: list[tuple[str, str]],
    samples: list[tuple[str, str]],
    copies_note: str,
    footer: str,
) -> str:
    lines = [lead, ""]
    lines += [f"{label + ':':<10}{value}" for label, value in facts]
    lines += ["", "Why people are angry (share of the negative tweets):"]
    lines += [f"  {share:>4}  {reason}" for share, reason in reasons] or ["  (no reason known)"]
    lines += ["", f"Representative negative tweets. {copies_note}"]
    for number, (text, notes) in enumerate(samples, start=1):
        lines.append(f"  {number}. {text}")
        if notes:
            lines.append(f"     [{notes}]")
    if not samples:
        lines.append("  (none)")
    lines += ["", footer]
    return "\n".join(lines) + "\n"


def _html_body(
    title: str,
    lead: str,
    facts: list[tuple[str, str]],
    reasons: list[tuple[str, str]],
    samples: list[tuple[str, str]],
    copies_note: str,
    footer: str,
) -> str:
    esc = html.escape
    fact_rows = "".join(
        f'<tr><th style="text-align:left;padding-right:12px;vertical-align:top">{esc(label)}</th>'
        f"<td>{esc(value)}</td></tr>"
        for label, value in facts
    )
    reason_rows = "".join(
        f'<tr><td style="text-align:right;padding-right:8px">{esc(share)}</td><td>{esc(reason)}</td></tr>'
        for share, reason in reasons
    )
    items = "".join(
        f'<li style="margin-bottom:8px">{esc(text)}'
        + (f'<br><small style="color:#555">{esc(notes)}</small>' if notes else "")
        + "</li>"
        for text, notes in samples
    )
    return (
        '<div style="font-family:Arial,Helvetica,sans-serif;font-size:14px">'
        f'<h2 style="color:#b00020">{esc(title)}</h2>'
        f"<p>{esc(lead)}</p>"
        f"<table>{fact_rows}</table>"
        "<h3>Why people are angry</h3>"
        + (f"<table>{reason_rows}</table>" if reasons else "<p>(no reason known)</p>")
        + f"<h3>Representative negative tweets</h3><p><small>{esc(copies_note)}</small></p>"
        + (f"<ol>{items}</ol>" if items else "<p>(none)</p>")
        + f'<p style="color:#555"><small>{esc(footer)}</small></p></div>'
    )
