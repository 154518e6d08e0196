"""Email: spooled before sending, delivered to a real SMTP sink, queued while SMTP is down, never lost."""

from __future__ import annotations

import time
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path

import pytest

from buzzwatch.notify import Mailer
from buzzwatch.settings import CommonSettings, SmtpSettings
from stack.ports import free_port
from tests.support.polling import wait_for


def smtp_settings(port: int | None, **changes: object) -> SmtpSettings:
    base = SmtpSettings.from_env({"ALERT_EMAIL_TO": "team@example.test,oncall@example.test"})
    changes = {"timeout_s": 2.0, **changes}
    return replace(base, host="127.0.0.1" if port else None, port=port or 25, **changes)


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
    # The delivery thread removes the spooled mail just after the sink has it: wait for both.
    wait_for(lambda: smtp_sink.messages and not mailer.pending(), 10, "the mail delivered")
    (message,) = smtp_sink.messages
    assert message["Subject"] == "Bad buzz: delta"
    assert message["To"] == "team@example.test, oncall@example.test"
    assert parts(message)["text/html"].strip() == long_html
    assert [p.name for p in mailer.sent_dir.glob("*.eml")] != []
    assert mailer.close() == 0


@pytest.mark.integration
def test_smtp_down_then_up_delivers_every_queued_mail(tmp_path: Path, make_smtp_sink) -> None:
    port = free_port()
    mailer = Mailer(smtp_settings(port), tmp_path / "spool", backoff_s=0.1, max_backoff_s=0.3)
    started = time.monotonic()
    assert mailer.send("first", "one") is True
    assert mailer.send("second", "two") is True
    assert time.monotonic() - started < 1  # spooled: the caller never waits for SMTP
    assert len(mailer.pending()) == 2
    sink = make_smtp_sink(port)
    wait_for(lambda: len(sink.messages) == 2 and not mailer.pending(), 10, "both mails delivered")
    assert sorted(m["Subject"] for m in sink.messages) == ["first", "second"]
    assert mailer.close() == 0


@pytest.mark.integration
def test_mail_queued_by_a_stopped_process_is_sent_after_restart(tmp_path: Path, make_smtp_sink) -> None:
    port = free_port()
    first = Mailer(smtp_settings(port), tmp_path / "spool")
    assert first.send("queued", "body") is True
    assert first.close(final_attempt=False) == 1  # still on disk
    sink = make_smtp_sink(port)
    restarted = Mailer(smtp_settings(port), tmp_path / "spool")
    restarted.start()
    wait_for(lambda: sink.messages and not restarted.pending(), 10, "the queued mail delivered")
    assert [m["Subject"] for m in sink.messages] == ["queued"]
    assert restarted.close() == 0


@pytest.mark.integration
def test_permanently_refused_mail_is_kept_in_failed(tmp_path: Path, make_smtp_sink) -> None:
    sink = make_smtp_sink(refuse_recipients=True)
    mailer = Mailer(smtp_settings(sink.port), tmp_path / "spool")
    assert mailer.send("refused", "body") is True
    wait_for(lambda: len(list(mailer.failed_dir.glob("*.eml"))) == 1, 10, "the refused mail in failed/")
    assert mailer.pending() == []
    assert sink.messages == []
    assert mailer.close() == 0


@pytest.mark.integration
def test_a_key_is_mailed_once_across_restarts(tmp_path: Path, make_smtp_sink) -> None:
    """A caller that crashed after `send` but before marking its own record sends again: still one mail."""
    port = free_port()
    first = Mailer(smtp_settings(port), tmp_path / "spool")
    assert first.send("alert 7", "body", key="episode-7|new") is True
    assert first.send("alert 7", "body", key="episode-7|new") is False  # pending: not queued twice
    assert first.close(final_attempt=False) == 1
    sink = make_smtp_sink(port)
    restarted = Mailer(smtp_settings(port), tmp_path / "spool")
    assert restarted.send("alert 7", "body", key="episode-7|new") is False  # still pending from before
    assert restarted.send("alert 8", "body", key="episode-8|new") is True
    wait_for(lambda: len(sink.messages) == 2 and not restarted.pending(), 10, "both mails delivered")
    assert restarted.send("alert 7", "body", key="episode-7|new") is False  # delivered: not sent again
    assert restarted.close() == 0
    assert sorted(m["Subject"] for m in sink.messages) == ["alert 7", "alert 8"]
    message_ids = {m["Subject"]: m["Message-ID"] for m in sink.messages}
    assert (
        message_ids["alert 7"]
        == Mailer(smtp_settings(port), tmp_path).build_message("x", "y", key="episode-7|new")["Message-ID"]
    )  # the same Message-ID whoever builds it


def test_a_keyed_mail_reaches_the_outbox_once(tmp_path: Path) -> None:
    mailer = Mailer(smtp_settings(None), tmp_path / "spool", tmp_path / "outbox")
    assert mailer.send("alert", "body", key="k") is True
    assert mailer.send("alert", "body", key="k") is False
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


@pytest.mark.integration
def test_a_hanging_smtp_server_holds_up_only_the_delivery_thread(
    tmp_path: Path, hanging_smtp, make_smtp_sink
) -> None:
    """A server that accepts and never answers: `send` returns at once; the mail goes once it recovers."""
    mailer = Mailer(
        smtp_settings(hanging_smtp.port, timeout_s=30.0), tmp_path / "spool", backoff_s=0.1, max_backoff_s=0.2
    )
    started = time.monotonic()
    assert mailer.send("first", "one") is True
    # The delivery thread is stuck in that connection.
    wait_for(lambda: hanging_smtp.accepted >= 1, 10, "a connection to the hanging server")
    assert mailer.send("second", "two") is True
    assert time.monotonic() - started < 2
    assert len(mailer.pending()) == 2
    hanging_smtp.close()  # the server recovers: the stuck connection drops, a real server takes the port
    sink = make_smtp_sink(hanging_smtp.port)
    wait_for(lambda: len(sink.messages) == 2 and not mailer.pending(), 20, "both mails delivered")
    assert sorted(m["Subject"] for m in sink.messages) == ["first", "second"]
    assert mailer.close() == 0


@pytest.mark.integration
def test_closing_does_not_wait_for_a_hanging_server(tmp_path: Path, hanging_smtp) -> None:
    """At shutdown a stuck delivery is given up after a short grace: the mail stays queued for next time."""
    mailer = Mailer(smtp_settings(hanging_smtp.port, timeout_s=30.0), tmp_path / "spool")
    assert mailer.send("stuck", "body") is True
    wait_for(lambda: hanging_smtp.accepted >= 1, 10, "a connection to the hanging server")
    started = time.monotonic()
    assert mailer.close(grace_s=0.5) == 1
    assert time.monotonic() - started < 3
    assert len(Mailer(smtp_settings(None), tmp_path / "spool").pending()) == 1


@pytest.mark.integration
def test_the_api_delivers_at_start_the_mail_an_earlier_api_process_left_queued(
    tmp_path: Path, make_smtp_sink
) -> None:
    from types import SimpleNamespace

    from api.app import create_app
    from api.settings import ApiSettings

    port = free_port()
    env = {"BUZZWATCH_VAR_DIR": str(tmp_path), "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port)}
    earlier = Mailer.from_settings(CommonSettings.from_env(env))
    assert earlier.send("BuzzWatch: model drift", "queued while SMTP was down") is True
    assert earlier.close(final_attempt=False) == 1  # the API process stopped with its drift mail queued
    sink = make_smtp_sink(port)
    model = SimpleNamespace(model_version="test-1", labels=("negative", "neutral", "positive"), metrics={})
    create_app(ApiSettings.from_env(env), predictor=model)  # a new API process: no new alert is sent
    wait_for(
        lambda: [m["Subject"] for m in sink.messages] == ["BuzzWatch: model drift"], 10, "the drift mail"
    )
