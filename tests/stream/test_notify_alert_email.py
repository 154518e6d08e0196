"""The bad-buzz alert email (buzzwatch.notify.render_alert): what a social-media team reads."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path

from buzzwatch.notify import NO_TERMS, Mailer, render_alert
from buzzwatch.schema import Alert
from buzzwatch.settings import SmtpSettings

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
    }
    values.update(changes)
    return Alert(**values)  # type: ignore[arg-type]


def test_the_mail_says_who_when_how_bad_why_with_examples() -> None:
    subject, text, _ = render_alert(alert())
    assert subject == "[BuzzWatch] Bad buzz: united: 94% negative (usually 59%), 112 tweets"
    assert text.startswith("Bad buzz on united: 94% of the tweets are negative, against 59% usually.\n")
    assert "When:     23 Feb 2015, 10:56-11:10 UTC (14 min)" in text
    assert "Volume:   112 tweets (about 34 expected in that time)" in text  # authors unknown
    _, with_authors, html = render_alert(alert(authors=87))
    assert "Volume:   112 tweets from 87 people (about 34 expected in that time)" in with_authors
    assert "112 tweets from 87 people" in html
    assert "from 1 person " in render_alert(alert(authors=1))[1]
    assert "Terms:    cancelled, canceled" in text and "Hashtags: #unitedfail" in text
    reasons = text.split("Why people are angry (share of the negative tweets):\n")[1].split("\n\n")[0]
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
    assert "A new bad buzz (episode united:20150223T1056Z); spike score 12.4." in text


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
    assert "  (no reason known)" in text and "  (none)" in text and "(no reason known)" in html
    assert "An update: this bad buzz was alerted before and grew" in text


def test_a_window_over_midnight_names_both_days() -> None:
    _, text, _ = render_alert(
        alert(
            window_start=datetime(2015, 2, 22, 23, 30, tzinfo=UTC),
            window_end=datetime(2015, 2, 23, 0, 20, tzinfo=UTC),
        )
    )
    assert "When:     22 Feb 2015, 23:30-23 Feb 2015, 00:20 UTC (50 min)" in text


def test_the_rendered_mail_is_a_readable_two_part_message(tmp_path: Path) -> None:
    settings = SmtpSettings.from_env({"ALERT_EMAIL_TO": "team@example.test"})
    subject, text, html = render_alert(alert())
    message = Mailer(settings, tmp_path / "spool").build_message(subject, text, html)
    parsed = message_from_bytes(message.as_bytes(), policy=default)
    assert parsed["Subject"] == subject
    assert parsed.get_body(("plain",)).get_content() == text
    assert parsed.get_body(("html",)).get_content().strip() == html
