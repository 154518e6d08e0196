"""The bad-buzz alert email (buzzwatch.notify.render_alert): what a social-media team reads."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from buzzwatch.notify import NO_TERMS, Mailer, render_alert
from buzzwatch.schema import Alert
from buzzwatch.settings import CommonSettings, SettingsError, SmtpSettings
from buzzwatch.telemetry import BAD_BUZZ_ALERT, LocalTelemetry, RecordingTelemetry
from buzzwatch.zones import BrandsFile
from worker.detection_service.dispatcher import AlertDispatcher
from worker.detection_service.settings import DetectionSettings

REASONS = {
    "cancelled flight": 0.55,
    "late flight": 0.2,
    "customer service issue": 0.1,
    "lost luggage": 0.06,
    "bad flight": 0.05,
    "can't tell": 0.04,
}
SAMPLES = (
    {
        "id": "1",
        "text": "RT @ann: 3rd flight cancelled <today> & no hotel",
        "group_size": 30,
        "reason": "cancelled flight",
    },
    {"id": "2", "text": "stuck at EWR, everything cancelled", "group_size": 1, "reason": "cancelled flight"},
    {"id": "3", "text": "no one answers the phone", "group_size": 2, "reason": None},
)


def alert(**changes: object) -> Alert:
    values: dict[str, object] = {
        "brand": "united",
        "fired_at": datetime(2015, 2, 23, 11, 10, 24, tzinfo=UTC),
        "window_start": datetime(2015, 2, 23, 10, 56, tzinfo=UTC),
        "window_end": datetime(2015, 2, 23, 11, 10, 24, tzinfo=UTC),
        "negative_share": 0.9375,
        "baseline_share": 0.59,
        "volume": 112,
        "score": 12.4,
        "top_terms": ("cancelled", "canceled"),
        "sample_ids": ("1", "2", "3"),
        "episode_id": "united:20150223T1056Z",
        "baseline_volume": 33.9,
        "top_hashtags": ("#unitedfail",),
        "reasons": REASONS,
        "samples": SAMPLES,
        "main_reason": "cancelled flight",
    }
    values.update(changes)
    return Alert(**values)  # type: ignore[arg-type]


def test_the_mail_says_who_when_how_bad_why_with_examples() -> None:
    subject, text, _ = render_alert(alert())
    assert subject == "[BuzzWatch] Bad buzz: united: 94% negative (usually 59%), 112 tweets, since 10:56 UTC"
    assert text.startswith("Bad buzz on united: 94% of the tweets are negative, against 59% usually.\n")
    assert "Started:  at or before 23 Feb 2015, 10:56 UTC\n" in text  # no estimate: the window's start
    assert "Alerted:  23 Feb 2015, 11:10 UTC\n" in text and "Window:   10:56-11:10 UTC (14 min)" in text
    assert "Volume:   112 tweets (about 34 expected in that time)" in text  # authors unknown
    _, with_authors, html = render_alert(alert(authors=87))
    assert "Volume:   112 tweets from 87 people (about 34 expected in that time)" in with_authors
    assert "112 tweets from 87 people" in html
    assert "from 1 person " in render_alert(alert(authors=1))[1]
    assert "Terms:    cancelled, canceled" in text and "Hashtags: #unitedfail" in text
    heading = "Why people are angry: mostly cancelled flight (share of the negative tweets):\n"
    reasons = text.split(heading)[1].split("\n\n")[0]
    assert reasons.splitlines() == [
        "   55%  Cancelled flight",
        "   20%  Late flight",
        "   10%  Customer service issue",
        "    6%  Lost luggage",
        "    9%  other reasons",
    ]
    assert "  1. RT @ann: 3rd flight cancelled <today> & no hotel\n" in text
    assert "     [Cancelled flight; posted 30 times (retweets and copies)]" in text
    assert "  3. no one answers the phone\n     [posted 2 times (retweets and copies)]" in text
    assert text.count("  2. ") == 1 and "stuck at EWR, everything cancelled\n     [Cancelled flight]" in text
    assert "A new bad buzz (reference united:20150223T1056Z)." in text
    assert "score" not in text.lower() and "12.4" not in text  # no internal score names


def test_the_mail_tells_the_start_and_the_alert_in_the_brand_time_zone() -> None:
    started = datetime(2015, 2, 23, 10, 41, tzinfo=UTC)
    subject, text, html = render_alert(alert(started_at=started), ZoneInfo("Europe/Paris"))
    assert subject.endswith(", since 11:41 CET")
    assert "Started:  about 23 Feb 2015, 11:41 CET (10:41 UTC), by estimate\n" in text
    assert "Alerted:  23 Feb 2015, 12:10 CET (11:10 UTC)\n" in text
    assert "Window:   11:56-12:10 CET (14 min)" in text
    assert "23 Feb 2015, 11:41 CET (10:41 UTC)" in html
    _, chicago, _ = render_alert(alert(started_at=started), ZoneInfo("America/Chicago"))
    assert "Started:  about 23 Feb 2015, 04:41 CST (10:41 UTC), by estimate" in chicago
    late = datetime(2015, 2, 23, 23, 30, tzinfo=UTC)  # the next day in Paris
    _, text, _ = render_alert(alert(started_at=late, fired_at=late), ZoneInfo("Europe/Paris"))
    assert "Started:  about 24 Feb 2015, 00:30 CET (23 Feb 2015, 23:30 UTC)" in text


@pytest.mark.parametrize(
    ("start", "end", "window"),
    [  # Paris's clocks go back from 03:00 CEST to 02:00 CET at 01:00 UTC, and forward a year later
        (
            datetime(2026, 10, 25, 0, 50, tzinfo=UTC),
            datetime(2026, 10, 25, 1, 5, tzinfo=UTC),
            "02:50 CEST-02:05 CET",
        ),
        (
            datetime(2026, 3, 29, 0, 50, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 5, tzinfo=UTC),
            "01:50 CET-03:05 CEST",
        ),
    ],
)
def test_a_window_across_a_summer_time_change_names_each_ends_clock(
    start: datetime, end: datetime, window: str
) -> None:
    """'02:50-02:05 CET (15 min)' ran backwards, '01:50-03:05 CEST (15 min)' read as 75 minutes."""
    _, text, _ = render_alert(
        alert(window_start=start, window_end=end, fired_at=end), ZoneInfo("Europe/Paris")
    )
    assert f"Window:   {window} (15 min)" in text


def test_the_mail_says_when_no_reason_stands_out_and_what_the_terms_and_samples_stand_for() -> None:
    reasons = {"can't tell": 0.7, "customer service issue": 0.3}
    _, text, html = render_alert(
        alert(main_reason=None, reasons=reasons, samples_share=0.27, terms_share=0.64)
    )
    assert "Why people are angry: no single reason stands out (share of the negative tweets):" in text
    assert "   70%  None of the known reasons" in text and "no single reason stands out</h3>" in html
    assert "Terms:    cancelled, canceled (terms or hashtags in 64% of the negative tweets)" in text
    assert "With their copies they are 27% of the negative tweets." in text


def test_the_html_has_the_same_content_escaped() -> None:
    _, text, html = render_alert(alert())
    assert "<h2" in html and "Bad buzz on united</h2>" in html
    assert "RT @ann: 3rd flight cancelled &lt;today&gt; &amp; no hotel" in html and "<today>" not in html
    for piece in ("10:56-11:10 UTC (14 min)", "cancelled, canceled", "#unitedfail", "Lost luggage", "9%"):
        assert piece in text and piece in html
    assert html.count("<li") == len(SAMPLES) and html.count("posted 30 times") == 1


def test_an_update_says_it_grew_and_empty_parts_say_so() -> None:
    subject, text, html = render_alert(
        alert(kind="update", top_terms=(), top_hashtags=(), reasons={}, samples=(), sample_ids=())
    )
    assert subject.startswith("[BuzzWatch] Bad buzz growing: united: ")
    assert f"Terms:    {NO_TERMS}" in text and f"Hashtags: {NO_TERMS}" in text
    assert "Why people are angry (share of the negative tweets):\n  (no reason known)" in text
    assert "  (none)" in text and "(no reason known)" in html
    assert "An update: this bad buzz was alerted before and grew" in text


def test_a_window_over_midnight_names_both_days() -> None:
    _, text, _ = render_alert(
        alert(
            window_start=datetime(2015, 2, 22, 23, 30, tzinfo=UTC),
            window_end=datetime(2015, 2, 23, 0, 20, tzinfo=UTC),
        )
    )
    assert "Window:   22 Feb 2015, 23:30 UTC to 23 Feb 2015, 00:20 UTC (50 min)" in text


def test_the_rendered_mail_is_a_readable_two_part_message(tmp_path: Path) -> None:
    settings = SmtpSettings.from_env({"ALERT_EMAIL_TO": "team@example.test"})
    subject, text, html = render_alert(alert())
    message = Mailer(settings, tmp_path / "spool").build_message(subject, text, html)
    parsed = message_from_bytes(message.as_bytes(), policy=default)
    assert parsed["Subject"] == subject
    assert parsed.get_body(("plain",)).get_content() == text
    assert parsed.get_body(("html",)).get_content().strip() == html


def test_the_detection_service_mails_in_the_zone_and_name_of_the_brands_file(tmp_path: Path) -> None:
    """From config/brands.toml's `timezone` and `display_name` to the mail in the outbox; the alert's JSON
    stays in UTC with the brand id."""
    brands = tmp_path / "brands.toml"
    brands.write_text(
        '[[brand]]\nname = "united"\ndisplay_name = "United Airlines"\nhandles = ["united"]\n'
        'timezone = "America/Chicago"\n'
    )
    settings = CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(tmp_path)})
    telemetry = RecordingTelemetry(LocalTelemetry(tmp_path, role="detection"))
    mailer = Mailer.from_settings(settings)
    book = BrandsFile.read(brands)
    dispatcher = AlertDispatcher(telemetry, mailer, book.zones(), book.names())
    fired = alert(started_at=datetime(2015, 2, 23, 10, 41, tzinfo=UTC))
    dispatcher.spool("key", fired)
    dispatcher.announce("key", fired)
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    mail = message_from_bytes(eml.read_bytes(), policy=default)
    assert mail["Subject"].startswith("[BuzzWatch] Bad buzz: United Airlines: 94% negative")
    assert mail["Subject"].endswith("since 04:41 CST")
    text = mail.get_body(("plain",)).get_content()
    assert text.startswith("Bad buzz on United Airlines (united): ")
    assert "Started:  about 23 Feb 2015, 04:41 CST (10:41 UTC)" in text
    assert "Bad buzz on United Airlines (united)</h2>" in mail.get_body(("html",)).get_content()
    (event,) = [e for e in telemetry.recent("events") if e.get("name") == BAD_BUZZ_ALERT]
    assert event["properties"]["alert"]["started_at"] == "2015-02-23T10:41:00Z"
    assert event["properties"]["brand"] == "united"
    absent = BrandsFile()
    assert absent.zones() == {}  # no brands file: every brand in UTC
    assert absent.names() == {}  # ... and read by its id


def test_a_brand_without_a_display_name_is_named_by_its_id_once() -> None:
    subject, text, _ = render_alert(alert(), names={"united": "united"})
    assert subject.startswith("[BuzzWatch] Bad buzz: united: ")
    assert text.startswith("Bad buzz on united: ") and "(united)" not in text
    assert render_alert(alert())[:2] == (subject, text)  # a brand the names do not list reads the same


def test_the_shipped_brands_file_names_every_brand() -> None:
    shipped = BrandsFile.read()
    names = shipped.names()
    assert names["united"] == "United Airlines" and names["airparadis"] == "Air Paradis"
    assert set(names) == set(shipped.zones())


def test_with_the_apps_address_the_mail_links_the_brands_watch_page(tmp_path: Path) -> None:
    _, text, html = render_alert(alert(), app_url="https://buzzwatch.example.com/app")
    assert "Watch it live: https://buzzwatch.example.com/app/watch_it?brand=united\n" in text
    assert '<a href="https://buzzwatch.example.com/app/watch_it?brand=united">Watch it live</a>' in html
    _, text, html = render_alert(alert(brand="a&b <x>"), app_url="http://127.0.0.1:8501")
    assert "watch_it?brand=a%26b+%3Cx%3E" in text and "<x>" not in html.split("</h2>", 1)[1]
    assert "Watch it" not in render_alert(alert())[1]  # no address, no link
    settings = DetectionSettings.from_env({"BUZZWATCH_APP_URL": "https://buzzwatch.example.com/"})
    assert settings.app_url == "https://buzzwatch.example.com"
    for wrong in ("buzzwatch.example.com", "ftp://x", "https://", "https://a b"):
        with pytest.raises(SettingsError, match=r"BUZZWATCH_APP_URL: .* is not an http"):
            DetectionSettings.from_env({"BUZZWATCH_APP_URL": wrong})
    mailer = Mailer.from_settings(CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(tmp_path)}))
    telemetry = RecordingTelemetry(LocalTelemetry(tmp_path, role="detection"))
    AlertDispatcher(telemetry, mailer, app_url=settings.app_url).spool("key", alert())
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    mail = message_from_bytes(eml.read_bytes(), policy=default)
    assert "https://buzzwatch.example.com/watch_it?brand=united" in mail.get_body(("plain",)).get_content()
