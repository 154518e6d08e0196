"""The pure helpers behind the pages."""

from __future__ import annotations

from streamlit_app.model_view import confusion_frame, metric_sections, other_metrics
from streamlit_app.watch import literal_markdown, quoted_tweet


def test_metric_sections_read_the_flat_keys_of_the_artifact() -> None:
    metrics = {
        "validation_airline_macro_f1": 0.8,
        "validation_airline_accuracy": 0.85,
        "validation_airline_n": 1500.0,
        "validation_airline_confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        "tweeteval_test_macro_recall": 0.66,
        "selection_score": 0.7,
        "train_seconds": 900.0,
    }
    sections = dict(metric_sections(metrics))
    assert sections["validation_airline"]["macro_f1"] == 0.8
    assert sections["validation_airline"]["n"] == 1500.0
    assert sections["tweeteval_test"] == {"macro_recall": 0.66}
    assert other_metrics(metrics) == {"selection_score": 0.7, "train_seconds": 900.0}
    frame = confusion_frame(
        sections["validation_airline"]["confusion_matrix"], ["negative", "neutral", "positive"]
    )
    assert frame is not None and frame["count"].sum() == 3


def test_metric_sections_read_nested_and_top_level_reports() -> None:
    assert metric_sections({"macro_f1": 0.5})[0] == ("evaluation", {"macro_f1": 0.5})
    assert metric_sections({"test": {"accuracy": 0.9}}) == [("test", {"accuracy": 0.9})]
    assert confusion_frame([[1, 2]], ["a", "b"]) is None


def test_brand_series_carries_values_forward_between_the_workers_writes() -> None:
    from streamlit_app.watch import brand_series

    records = [
        {
            "name": "negative_share",
            "value": 0.2,
            "dimensions": {"brand": "b"},
            "time": "2026-01-01T00:00:00.000001Z",
        },
        {
            "name": "baseline_negative_share",
            "value": 0.1,
            "dimensions": {"brand": "b"},
            "time": "2026-01-01T00:00:00.000002Z",
        },
        {
            "name": "tweet_volume",
            "value": 5,
            "dimensions": {"brand": "b"},
            "time": "2026-01-01T00:00:00.000003Z",
        },
        {
            "name": "negative_share",
            "value": 0.6,
            "dimensions": {"brand": "b"},
            "time": "2026-01-01T00:00:01Z",
        },
        {
            "name": "negative_share",
            "value": 0.9,
            "dimensions": {"brand": "other"},
            "time": "2026-01-01T00:00:02Z",
        },
    ]
    series = brand_series(records, "b")
    assert list(series.columns) == ["negative share", "baseline", "volume"]
    assert series.iloc[-1].tolist() == [0.6, 0.1, 5.0]
    assert series.iloc[2:].notna().all().all()


def test_a_tweet_is_shown_literally_in_markdown() -> None:
    """Tweets are anyone's: '$50 and $20' rendered as LaTeX, '![](url)' loaded a remote image."""
    text = (
        "Paid $50 & $20 *twice* ![x](https://t.test/p.png) :red[hi] <b>\n# not a heading\n\n- @united #fail"
    )
    quoted = quoted_tweet(text)
    assert quoted == (
        r"> Paid \$50 \& \$20 \*twice\* \!\[x\]\(https\://t\.test/p\.png\) \:red\[hi\] \<b\>" + "\n"
        r"> \# not a heading" + "\n>\n"
        r"> \- @united \#fail"
    )
    assert literal_markdown("lost, luggage") == "lost, luggage"
