"""Email: spooled before sending, delivered to a real SMTP sink, queued while SMTP is down, never lost."""

from __future__ import annotations

import time
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path

import pytest

from buzzwatch.emulator import free_port
from buzzwatch.notify import Mailer
from buzzwatch.settings import CommonSettings, SmtpSettings


def smtp_settings(port: int | None, **changes: object) -> SmtpSettings:
    base = SmtpSettings.from_env({"ALERT_EMAIL_TO": "team@example.test,oncall@example.test"})
    return replace(base, host="127.0.0.1" if port else None, port=port or 25, timeout_s=2.0, **changes)


def parts(message) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }


def test_without_smtp_host_mail_goes_to_the_outbox(tmp_path: Path) -> None:
    settings = CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(tmp_path)})
    mailer = Mailer.from_settings(settings)
    assert mailer.send("Bad buzz: united", "plain body", "<p>html body</p>") is True
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    message = message_from_bytes(eml.read_bytes())
    assert message["Subject"] == "Bad buzz: united"
    assert message["To"] == "social-media-team@localhost"
    assert parts(message)["text/plain"].strip() == "plain body"
    assert parts(message)["text/html"].strip() == "<p>html body</p>"
    assert mailer.pending() == []


@pytest.mark.integration
def test_mail_is_delivered_to_the_smtp_sink(tmp_path: Path, smtp_sink) -> None:
    mailer = Mailer(smtp_settings(smtp_sink.port), tmp_path / "spool")
    long_html = "<b>html</b>" + "<td>x</td>" * 500  # one 5,000-character line, as rendered alerts are
    assert mailer.send("Bad buzz: delta", "text", long_html) is True
    (message,) = smtp_sink.messages
    assert message["Subject"] == "Bad buzz: delta"
    assert message["To"] == "team@example.test, oncall@example.test"
    assert parts(message)["text/html"].strip() == long_html
    assert mailer.pending() == []
    assert mailer.close() == 0


@pytest.mark.integration
def test_smtp_down_then_up_delivers_every_queued_mail(tmp_path: Path, make_smtp_sink) -> None:
    port = free_port()
    mailer = Mailer(smtp_settings(port), tmp_path / "spool", attempts=2, backoff_s=0.1, max_backoff_s=0.3)
    started = time.monotonic()
    assert mailer.send("first", "one") is False
    assert mailer.send("second", "two") is False
    assert time.monotonic() - started < 5
    assert len(mailer.pending()) == 2
    sink = make_smtp_sink(port)
    deadline = time.monotonic() + 10
    # The background retry thread delivers on its own, then removes each spooled mail (just after the sink
    # has it: wait for both).
    while (len(sink.messages) < 2 or mailer.pending()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(m["Subject"] for m in sink.messages) == ["first", "second"]
    assert mailer.pending() == []
    assert mailer.close() == 0


@pytest.mark.integration
def test_mail_queued_by_a_stopped_process_is_sent_after_restart(tmp_path: Path, make_smtp_sink) -> None:
    port = free_port()
    first = Mailer(smtp_settings(port), tmp_path / "spool", attempts=1, background_retry=False)
    assert first.send("queued", "body") is False
    assert first.close() == 1  # still on disk
    sink = make_smtp_sink(port)
    restarted = Mailer(smtp_settings(port), tmp_path / "spool")
    assert restarted.flush() == 0
    assert [m["Subject"] for m in sink.messages] == ["queued"]


@pytest.mark.integration
def test_permanently_refused_mail_is_kept_in_failed(tmp_path: Path, make_smtp_sink) -> None:
    sink = make_smtp_sink(refuse_recipients=True)
    mailer = Mailer(smtp_settings(sink.port), tmp_path / "spool", attempts=1, background_retry=False)
    assert mailer.send("refused", "body") is False
    assert mailer.pending() == []
    assert len(list(mailer.failed_dir.glob("*.eml"))) == 1
    assert sink.messages == []
