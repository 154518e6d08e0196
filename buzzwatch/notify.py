"""Email that is never lost and never waits: spooled to disk, delivered over SMTP by its own thread.

    mailer = Mailer.from_settings(settings)          # or Mailer(settings.smtp, spool_dir)
    mailer.start()                                   # optional: deliver what an earlier run left queued
    mailer.send(subject, text_body, html_body)       # spools durably and returns; never touches the network
    mailer.send(subject, text_body, html_body, key="alert-42")   # at most one mail per key, across restarts
    mailer.close()                                   # stops the delivery thread after one last attempt

Each message is written as an RFC 5322 `.eml` file into `<spool_dir>/pending/` (fsync, then linked into
place and the folder fsynced) before anything else; the caller (the detection consumer, an API request)
goes on at once. A delivery thread, started by the first `send` (or by `start`), sends the spool over SMTP
and retries what is left with an exponential backoff up to `max_backoff_s`: an SMTP server that is down or
hangs (each socket operation waits at most SMTP_TIMEOUT_S) holds up that thread only. A delivered message
moves to `<spool_dir>/sent/` (kept `sent_retention_s`, a week by default); one the server refuses for good
(5xx on the recipients or data) moves to `<spool_dir>/failed/` and is logged at ERROR: kept, not retried
forever. Several processes may share one spool: a message is claimed with an exclusive file lock while it
is sent, and the moves between folders happen under a spool-wide lock.

Idempotent per key: with `key`, the spool name and the Message-ID derive from the key, and a key that is
pending, sent, failed or in the outbox is not spooled again (`send` returns False). A caller that marks its
own record after `send` (the detection service's alert outbox) can crash between the two and send again
after a restart: the mail still goes out once. What no spool can prevent: a crash in the instant between
the SMTP server's "250 OK" and the move to `sent/` sends that mail again, with the same Message-ID (mail
systems that deduplicate by Message-ID show it once).

With no SMTP host configured, messages go to the outbox folder (`<var_dir>/outbox/*.eml` through
`from_settings`) as soon as they are spooled, where a person or a test can read them.

`render_alert(alert, zone, names)` writes a bad-buzz alert as a mail for a social-media team: subject, plain
text and HTML with the same content (who, by the brand's display name; when it started, by estimate, and
when it was alerted, in the brand's time zone with UTC beside; how bad against usual, volume, the terms
and hashtags that stand out and what share of the complaints use them, why people are angry or that no
reason stands out, representative tweets with their copy counts and the share they stand for). No internal
score names.
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import logging
import os
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from buzzwatch.schema import Alert
from buzzwatch.settings import CommonSettings, SmtpSettings
from buzzwatch.zones import brand_label, local_time

logger = logging.getLogger(__name__)

PERMANENT_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPNotSupportedError)
REASONS_SHOWN = 4  # the rest of the negative reasons are summed as "other reasons"
NO_TERMS = "none stands out against the brand's usual complaints"
CANT_TELL = "can't tell"  # the reason model's "none of the known reasons"
MAIL_DOMAIN = "buzzwatch.local"


class Mailer:
    """Spools email on disk and delivers it over SMTP (STARTTLS, SSL and login optional) on its own thread."""

    def __init__(
        self,
        settings: SmtpSettings,
        spool_dir: Path | str,
        outbox_dir: Path | str | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        sent_retention_s: float = 7 * 86400,
    ) -> None:
        self.settings = settings
        self.spool_dir = Path(spool_dir)
        self.outbox_dir = Path(outbox_dir) if outbox_dir else self.spool_dir.parent / "outbox"
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.sent_retention_s = sent_retention_s
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._last_prune = 0.0

    @classmethod
    def from_settings(cls, settings: CommonSettings, **options: Any) -> Mailer:
        """The spool under `<var_dir>/mail-spool`, the outbox under `<var_dir>/outbox`."""
        return cls(settings.smtp, settings.var_dir / "mail-spool", settings.var_dir / "outbox", **options)

    @property
    def pending_dir(self) -> Path:
        """Messages waiting for delivery."""
        return self.spool_dir / "pending"

    @property
    def sent_dir(self) -> Path:
        """Messages the server accepted (kept a while: a keyed message is not spooled again)."""
        return self.spool_dir / "sent"

    @property
    def failed_dir(self) -> Path:
        """Messages the server refused for good (kept for a person to look at)."""
        return self.spool_dir / "failed"

    def pending(self) -> list[Path]:
        """The queued messages, oldest first."""
        if not self.pending_dir.is_dir():
            return []
        found = []
        for path in self.pending_dir.glob("*.eml"):
            try:
                found.append((path.stat().st_mtime_ns, path.name, path))
            except FileNotFoundError:
                continue  # delivered meanwhile
        return [path for _, _, path in sorted(found)]

    def build_message(
        self, subject: str, text_body: str, html_body: str | None = None, key: str | None = None
    ) -> EmailMessage:
        """A multipart/alternative message (plain text first, HTML preferred by clients that show it)."""
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.settings.sender
        message["To"] = ", ".join(self.settings.recipients)
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = (
            make_msgid(domain=MAIL_DOMAIN) if key is None else f"<{_key_digest(key)}@{MAIL_DOMAIN}>"
        )
        # Quoted-printable keeps every line under SMTP's 998-character limit (HTML is often one long line).
        message.set_content(text_body, cte="quoted-printable")
        if html_body:
            message.add_alternative(html_body, subtype="html", cte="quoted-printable")
        return message

    def send(
        self, subject: str, text_body: str, html_body: str | None = None, key: str | None = None
    ) -> bool:
        """Spool durably, then hand over to the delivery thread; False: `key` was spooled before."""
        if not self.settings.recipients:
            raise ValueError("no alert recipients configured (ALERT_EMAIL_TO)")
        message = self.build_message(subject, text_body, html_body, key)
        spooled = self._spool(message, key)
        if spooled is None:
            logger.info("mail already spooled for this key", extra={"subject": subject, "key": key})
            return False
        if self.settings.host is None:
            self.flush()  # the outbox: a local move, no network
        else:
            self.start()
            self._wake.set()
        return True

    def spooled(self, key: str) -> bool:
        """Whether the mail sent with `key` is pending, sent (kept a while), failed or in the outbox."""
        return (self.pending_dir / _keyed_name(key)).exists() or self._done(_keyed_name(key))

    def _done(self, name: str) -> bool:
        """Whether the spool file `name` has left `pending/` (sent, failed or in the outbox)."""
        return any((folder / name).exists() for folder in (self.sent_dir, self.failed_dir, self.outbox_dir))

    def _spool(self, message: EmailMessage, key: str | None) -> Path | None:
        """Write the message into `pending/`; None when its key is already pending or done."""
        if key is None:
            name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}.eml"
        else:
            name = _keyed_name(key)
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.pending_dir / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(message.as_bytes(policy=SMTP_POLICY))  # CRLF line ends, as SMTP wants
            handle.flush()
            os.fsync(handle.fileno())
        final = self.pending_dir / name
        try:
            with self._spool_lock():
                if self._done(name):
                    return None
                try:
                    os.link(temporary, final)  # fails if that key is pending: never replaces a queued mail
                except FileExistsError:
                    return None
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_folder(self.pending_dir)
        return final

    @contextmanager
    def _spool_lock(self) -> Iterator[None]:
        """Exclusive across threads and processes (each open file has its own flock)."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.spool_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _move(self, path: Path, folder: Path) -> Path:
        """Move a spooled message to `folder` (sent, failed, the outbox), durably."""
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        with self._spool_lock():
            os.replace(path, target)
        _fsync_folder(folder)
        return target

    def flush(self) -> int:
        """Try once, now, to deliver every queued message; returns how many are still pending."""
        if self.settings.host is None:
            for path in self.pending():
                target = self._move(path, self.outbox_dir)
                logger.info("mail written to the outbox (no SMTP host)", extra={"path": str(target)})
            return 0
        with self._flush_lock:
            queued = self.pending()
            if not queued:
                return 0
            try:
                connection = self._connect()
            except (OSError, smtplib.SMTPException) as exc:
                logger.warning("SMTP connection failed", extra={"error": str(exc), "queued": len(queued)})
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
                logger.warning(
                    "SMTP send failed; mail stays queued", extra={"error": str(exc), "path": str(path)}
                )
                return False
            self._move(path, self.sent_dir)
            if refused:
                logger.error(
                    "some recipients were refused", extra={"refused": sorted(refused), "path": path.name}
                )
            logger.info("mail delivered", extra={"path": path.name})
            return True

    def _fail(self, path: Path, exc: Exception) -> None:
        target = self._move(path, self.failed_dir)
        logger.error(
            "SMTP server refused the mail for good; kept in the failed folder",
            extra={"error": str(exc), "path": str(target)},
        )

    def start(self) -> None:
        """Start the delivery thread (once); it also delivers what an earlier process left queued."""
        if self.settings.host is None or self._stop.is_set():
            return
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._deliver_loop, name="mail-delivery", daemon=True)
            self._thread.start()

    def _deliver_loop(self) -> None:
        """Deliver when woken; while mail is left, retry with a growing backoff."""
        delay = self.backoff_s
        while not self._stop.is_set():
            self._wake.clear()  # a send from now on wakes the wait below
            try:
                remaining = self.flush()
                self._prune_sent()
            except Exception:  # a full disk, a bad file: keep the thread, try again later
                logger.exception("mail delivery failed; will retry")
                remaining = 1
            if remaining:
                self._wake.wait(delay)
                delay = min(delay * 2, self.max_backoff_s)
            else:
                delay = self.backoff_s
                self._wake.wait()

    def _prune_sent(self, every_s: float = 3600.0) -> None:
        """Forget delivered messages older than `sent_retention_s` (at most once an hour)."""
        now = time.time()
        if now - self._last_prune < every_s or not self.sent_dir.is_dir():
            return
        self._last_prune = now
        for path in self.sent_dir.glob("*.eml"):
            try:
                if now - path.stat().st_mtime > self.sent_retention_s:
                    path.unlink()
            except FileNotFoundError:
                continue

    def close(self, final_attempt: bool = True, grace_s: float = 5.0) -> int:
        """Stop the delivery thread and try once more; returns how many messages stay queued on disk.

        A delivery still stuck after `grace_s` (a server that hangs) is left to die with the process: its
        mail stays queued for the next start, and shutdown does not wait SMTP_TIMEOUT_S more.
        """
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=grace_s)
        stuck = thread is not None and thread.is_alive()
        remaining = self.flush() if final_attempt and not stuck else len(self.pending())
        if remaining:
            logger.warning("mails still queued on disk at shutdown", extra={"queued": remaining})
        return remaining


def _key_digest(key: str) -> str:
    """A file- and Message-ID-safe name for a caller's key."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _keyed_name(key: str) -> str:
    """The spool file name of the mail sent with `key` (the same in every folder)."""
    return f"key-{_key_digest(key)}.eml"


def _fsync_folder(folder: Path) -> None:
    """Make a rename or link in `folder` survive a power cut, not only a process crash."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _span(start: datetime, end: datetime, zone: tzinfo) -> str:
    """A stretch of time in the zone, e.g. '10:56-11:10 CET (14 min)', with the days when they differ, and
    each end's abbreviation when summer time began or ended between them ('02:50 CEST-02:05 CET')."""
    minutes = max(1, round((end - start).total_seconds() / 60))
    first, last = start.astimezone(zone), end.astimezone(zone)
    if first.date() == last.date():
        head = (
            f"{first:%H:%M}" if first.tzname() == last.tzname() else local_time(start, zone, with_date=False)
        )
        return f"{head}-{local_time(end, zone, with_date=False)} ({minutes} min)"
    return f"{local_time(start, zone)} to {local_time(end, zone)} ({minutes} min)"


def _moment(moment: datetime, zone: tzinfo) -> str:
    """'23 Feb 2015, 10:41 CET (09:41 UTC)'; just the UTC time when the zone is UTC."""
    local = local_time(moment, zone)
    utc = local_time(moment, UTC, with_date=moment.astimezone(zone).date() != moment.astimezone(UTC).date())
    return local if local.endswith(" UTC") else f"{local} ({utc})"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _reason_name(reason: str) -> str:
    return "none of the known reasons" if reason.lower() == CANT_TELL else reason


def _reason_rows(reasons: Mapping[str, float]) -> list[tuple[str, str]]:
    """(share, reason) of the main negative reasons, largest first; the rest summed as 'other reasons'."""
    ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    rows = [(f"{share:.0%}", _capitalised(_reason_name(reason))) for reason, share in ranked[:REASONS_SHOWN]]
    rest = sum(share for _, share in ranked[REASONS_SHOWN:])
    return rows + ([(f"{rest:.0%}", "other reasons")] if rest > 0 else [])


def _why(alert: Alert) -> str:
    """The reasons' heading: the one that stands out, or plainly that none does."""
    if not alert.reasons:
        return "Why people are angry"
    if alert.main_reason:
        return f"Why people are angry: mostly {_reason_name(alert.main_reason).lower()}"
    return "Why people are angry: no single reason stands out"


def _sample_rows(alert: Alert) -> list[tuple[str, str]]:
    """(text, notes) of each representative tweet; notes: its reason and how often it was posted."""
    rows = []
    for sample in alert.samples:
        reason = sample.get("reason")
        notes = [_capitalised(_reason_name(str(reason)))] if reason else []
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


def render_alert(
    alert: Alert, zone: tzinfo = UTC, names: Mapping[str, str] | None = None, app_url: str | None = None
) -> tuple[str, str, str]:
    """Subject, plain text and HTML of a bad-buzz alert email (the same content in both bodies).

    Times are written in `zone`, the brand's time zone (`buzzwatch.zones`), with UTC beside them. The
    brand goes by its display name from `names` (brand id -> name, `buzzwatch.zones.BrandsFile.names`): alone
    in the subject, with its id in the body (the id is what the logs and the alert JSON carry). With the
    app's address (`app_url`) the mail links the brand's Watch it page.
    """
    names = names or {}
    headline = "Bad buzz" if alert.kind == "new" else "Bad buzz growing"
    began = alert.started_at or alert.window_start
    subject = (
        f"[BuzzWatch] {headline}: {names.get(alert.brand, alert.brand)}: {alert.negative_share:.0%} negative "
        f"(usually {alert.baseline_share:.0%}), {alert.volume} tweets, since {local_time(began, zone, False)}"
    )
    how_bad = (
        f"{alert.negative_share:.0%} of the tweets are negative, against {alert.baseline_share:.0%} usually."
    )
    expected = f"{alert.baseline_volume:.0f}"
    terms = ", ".join(alert.top_terms) or NO_TERMS
    if (alert.top_terms or alert.top_hashtags) and alert.terms_share is not None:
        terms += f" (terms or hashtags in {alert.terms_share:.0%} of the negative tweets)"
    started = (
        f"about {_moment(alert.started_at, zone)}, by estimate"
        if alert.started_at
        else f"at or before {_moment(alert.window_start, zone)}"
    )
    facts = [
        ("Started", started),
        ("Alerted", _moment(alert.fired_at, zone)),
        ("Window", _span(alert.window_start, alert.window_end, zone)),
        ("Volume", f"{alert.volume} tweets{_by_authors(alert)} (about {expected} expected in that time)"),
        ("Terms", terms),
        ("Hashtags", ", ".join(alert.top_hashtags) or NO_TERMS),
    ]
    reasons = _reason_rows(alert.reasons)
    samples = _sample_rows(alert)
    news = "A new bad buzz" if alert.kind == "new" else "An update: this bad buzz was alerted before and grew"
    footer = f"{news} (reference {alert.episode_id})."
    copies_note = "Retweets and copies are shown once, with how many times they were posted."
    if samples and alert.samples_share is not None:
        copies_note = (
            f"With their copies they are {alert.samples_share:.0%} of the negative tweets. {copies_note}"
        )
    title = f"{headline} on {brand_label(alert.brand, names)}"
    why = _why(alert)
    link = f"{app_url}/watch_it?{urlencode({'brand': alert.brand})}" if app_url else None
    return (
        subject,
        _text_body(f"{title}: {how_bad}", facts, why, reasons, samples, copies_note, footer, link),
        _html_body(title, how_bad, facts, why, reasons, samples, copies_note, footer, link),
    )


def _text_body(
    lead: str,
    facts: list[tuple[str, str]],
    why: str,
    reasons: list[tuple[str, str]],
    samples: list[tuple[str, str]],
    copies_note: str,
    footer: str,
    link: str | None,
) -> str:
    lines = [lead, ""]
    if link:
        lines += [f"Watch it live: {link}", ""]
    lines += [f"{label + ':':<10}{value}" for label, value in facts]
    lines += ["", f"{why} (share of the negative tweets):"]
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
    why: str,
    reasons: list[tuple[str, str]],
    samples: list[tuple[str, str]],
    copies_note: str,
    footer: str,
    link: str | None,
) -> str:
    esc = html.escape
    watch = f'<p><a href="{esc(link)}">Watch it live</a></p>' if link else ""
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
        f"<p>{esc(lead)}</p>{watch}"
        f"<table>{fact_rows}</table>"
        f"<h3>{esc(why)}</h3>"
        + (f"<table>{reason_rows}</table>" if reasons else "<p>(no reason known)</p>")
        + f"<h3>Representative negative tweets</h3><p><small>{esc(copies_note)}</small></p>"
        + (f"<ol>{items}</ol>" if items else "<p>(none)</p>")
        + f'<p style="color:#555"><small>{esc(footer)}</small></p></div>'
    )
