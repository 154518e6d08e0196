"""Each page driven by Streamlit's AppTest against a real API on a loopback port."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import streamlit as st
from flask import Flask
from streamlit.testing.v1 import AppTest

from api.limits import RateLimiter
from buzzwatch.schema import Alert
from buzzwatch.telemetry import (
    BAD_BUZZ_ALERT,
    BRAND_STATE,
    NEGATIVE_SHARE,
    TWEET_VOLUME,
    LocalTelemetry,
    RecordingTelemetry,
    Telemetry,
)
from stack.ports import free_port
from tests.support.api import serve_in_thread
from tests.support.integration import server_fixture
from worker.detection_service.server import serve_health

TIMEOUT = 30
UI_DIR = Path(__file__).resolve().parents[2] / "streamlit_app"


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(UI_DIR / "views" / f"{name}.py"), default_timeout=TIMEOUT)


def _feedback_rows(api_app: Flask) -> list:
    return list(api_app.extensions["buzzwatch"].store.iter_feedback())


def test_try_it_scores_a_tweet_and_stores_a_correction_once(api_url: str, api_app: Flask) -> None:
    page = _page("try_it").run()
    assert not page.exception
    page.text_area[0].input("Great crew, thanks for nothing")
    page.button[0].click().run()  # the form's Score button
    assert page.subheader[0].value.startswith("Positive")
    page.feedback[0].set_value(0).run()  # thumbs down
    page.radio[0].set_value("negative")
    page.text_input[0].input("sarcasm")
    page.button[1].click().run()  # Send correction
    assert not page.exception
    assert "feedback recorded (negative)" in page.success[0].value
    rows = _feedback_rows(api_app)
    assert [(r.text, r.predicted_label, r.correct_label, r.comment) for r in rows] == [
        ("Great crew, thanks for nothing", "positive", "negative", "sarcasm")
    ]
    page.run()  # a rerun must not send it again
    assert len(_feedback_rows(api_app)) == 1


def test_try_it_offers_no_more_text_or_comment_than_the_api_accepts(api_url: str, api_app: Flask) -> None:
    """The comment box had no limit: a long comment was typed, then refused by the API."""
    services = api_app.extensions["buzzwatch"]
    services.settings = dataclasses.replace(services.settings, max_text_chars=40, max_comment_chars=12)
    page = _page("try_it").run()
    assert page.text_area[0].max_chars == 40
    page.text_area[0].input("Great crew, thanks for nothing")
    page.button[0].click().run()
    page.feedback[0].set_value(0).run()
    assert page.text_input[0].max_chars == 12
    page.text_input[0].input("a comment far too long")  # refused as the browser refuses it
    assert page.text_input[0].value == ""
    page.text_input[0].input("sarcasm")
    page.button[1].click().run()
    assert not page.exception and "feedback recorded" in page.success[0].value
    assert [r.comment for r in _feedback_rows(api_app)] == ["sarcasm"]


def test_try_it_asks_for_no_comment_when_the_api_takes_none(api_url: str, api_app: Flask) -> None:
    services = api_app.extensions["buzzwatch"]
    services.settings = dataclasses.replace(services.settings, max_comment_chars=0)
    page = _page("try_it").run()
    page.text_area[0].input("Great crew, thanks for nothing")
    page.button[0].click().run()
    page.feedback[0].set_value(0).run()
    assert not page.text_input
    page.button[1].click().run()
    assert not page.exception and "feedback recorded" in page.success[0].value


def test_try_it_thumbs_up_confirms_the_label(api_url: str, api_app: Flask) -> None:
    page = _page("try_it").run()
    page.text_area[0].input("the worst delay ever")
    page.button[0].click().run()
    page.feedback[0].set_value(1).run()
    assert not page.exception
    assert [(r.predicted_label, r.correct_label) for r in _feedback_rows(api_app)] == [
        ("negative", "negative")
    ]


@pytest.mark.parametrize("text", ["", "\u200b\u2060"])  # no visible character: was the API's 400
def test_try_it_warns_on_an_empty_tweet(api_url: str, text: str) -> None:
    page = _page("try_it").run()
    page.text_area[0].input(text)
    page.button[0].click().run()
    assert "Type or paste a tweet" in page.warning[0].value
    assert not page.subheader


def _upload_to_try_it(csv_text: str) -> AppTest:
    """The Try it page once `csv_text` is uploaded as a CSV file and scored, with no exception on it."""
    page = _page("try_it").run()
    page.get("file_uploader")[0].upload("tweets.csv", csv_text.encode(), "text/csv").run()
    assert not page.exception
    return page


def test_try_it_scores_an_uploaded_csv_in_batches(api_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUZZWATCH_UI_BATCH_SIZE", "2")
    invisible = "\u200b\u2060"  # no visible character: an empty text, as the API takes it
    page = _upload_to_try_it(
        f"id,text\n1,love it\n2,lost my bag\n3,\n4,gate 5\n5,great flight\n6,{invisible}\n"
    )
    scored = page.dataframe[0].value
    assert scored["predicted_label"].fillna("").tolist() == [
        "positive",
        "negative",
        "",
        "neutral",
        "positive",
        "",
    ]
    assert scored["error"].fillna("").tolist() == ["", "", "empty text", "", "", "empty text"]
    assert {"p_negative", "p_neutral", "p_positive", "prediction_id"} <= set(scored.columns)
    assert page.warning[0].value == "Scored 4 of 6 tweets; 2 could not be scored (see the `error` column)."


def test_try_it_keeps_the_rows_scored_when_the_api_stops_scoring(
    api_url: str, api_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the anonymous rate limit mid-file, the page was a traceback and the rows scored were lost."""
    api_app.extensions["buzzwatch"].texts_limiter = RateLimiter(3)  # texts a minute: two batches of 2 is over
    monkeypatch.setenv("BUZZWATCH_UI_BATCH_SIZE", "2")
    page = _upload_to_try_it("text\nlove it\nlost my bag\ngate 5\ngreat flight\nlate again\n")
    scored = page.dataframe[0].value
    assert scored["predicted_label"].fillna("").tolist() == ["positive", "negative", "", "", ""]
    assert scored["error"][2:].str.startswith("not scored: too many texts to score").all()
    assert page.warning[0].value == "Scored 2 of 5 tweets; 3 could not be scored (see the `error` column)."


def test_try_it_scores_one_by_one_a_batch_too_large_to_send(api_url: str, api_app: Flask) -> None:
    """A batch over the API's request size (413) was a traceback; each of its texts alone fits."""
    api_app.config["MAX_CONTENT_LENGTH"] = 80  # bytes: one text's body fits, the batch's does not
    page = _upload_to_try_it(
        "text\nthe crew was great and the food was good\nthey lost my bag and the desk was rude\n"
    )
    assert page.dataframe[0].value["predicted_label"].tolist() == ["positive", "negative"]
    assert page.success[0].value == "Scored 2 tweets."


def test_try_it_never_replaces_a_column_of_the_uploaded_csv(api_url: str) -> None:
    page = _page("try_it").run()
    csv_text = "text,label,p_negative\nlost my bag,negative,0.9\ngreat crew,positive,0.1\n"
    page.get("file_uploader")[0].upload("labelled.csv", csv_text.encode(), "text/csv").run()
    assert not page.exception and not page.dataframe
    assert "already has the column(s) p_negative that scoring writes" in page.error[0].value
    page.get("file_uploader")[0].upload(
        "labelled.csv", b"text,label\nlost my bag,negative\n", "text/csv"
    ).run()
    scored = page.dataframe[0].value
    assert scored["label"].tolist() == ["negative"] and scored["predicted_label"].tolist() == ["negative"]
    assert page.success[0].value == "Scored 1 tweet."


def test_try_it_refuses_a_csv_whose_first_row_would_shift_every_column(api_url: str) -> None:
    page = _page("try_it").run()
    page.get("file_uploader")[0].upload("shifted.csv", b"id,text\n1,late, again\n2,ok\n", "text/csv").run()
    assert not page.exception and not page.dataframe
    assert "shifted.csv: line 2: more fields than the header" in page.error[0].value


def test_try_it_explains_a_csv_without_text_column(api_url: str) -> None:
    page = _page("try_it").run()
    page.get("file_uploader")[0].upload("bad.csv", b"tweet\nhello\n", "text/csv").run()
    assert "no `text` column" in page.error[0].value


def test_pages_stop_with_a_message_when_the_api_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUZZWATCH_API_URL", "http://127.0.0.1:9")
    for name in ("try_it", "the_model"):
        page = _page(name).run()
        assert not page.exception
        assert "is not ready (the API at http://127.0.0.1:9 cannot be reached" in page.error[0].value


def _html_everywhere(environ: dict, start_response: Callable) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/html")])
    return [b"<html>sign in to continue</html>"]


@server_fixture
def not_the_api_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve_in_thread(_html_everywhere) as url:
        monkeypatch.setenv("BUZZWATCH_API_URL", url)
        yield url


def test_pages_say_when_the_api_url_answers_with_something_else(not_the_api_url: str) -> None:
    """A URL answering 200 with HTML (a proxy's sign-in page, the app's own port) passed the ready check, then
    the first call's answer was a TypeError traceback ('NoneType' object is not subscriptable)."""
    for name in ("try_it", "the_model"):
        page = _page(name).run()
        assert not page.exception, name
        assert "answered HTTP 200 with text/html, not the API's JSON" in page.error[0].value


def test_the_model_shows_metrics_confusion_matrix_and_feedback(api_url: str, api_app: Flask) -> None:
    client = api_app.test_client()
    prediction = client.post("/v1/predict", json={"text": "love it"}).get_json()
    client.post("/v1/feedback", json={"prediction_id": prediction["prediction_id"], "label": "neutral"})
    page = _page("the_model").run()
    assert not page.exception
    assert "lexicon-test-1" in page.caption[0].value
    values = {metric.label: metric.value for metric in page.metric}
    assert values["F1, average of the labels"] == "0.500" and values["Accuracy"] == "0.600"
    assert values["Feedback"] == "1" and values["Corrections"] == "1 (100% of the feedback)"
    assert not any(metric.delta for metric in page.metric)  # a share, not a trend: no arrow
    assert "Evaluation" in [header.value for header in page.subheader]
    assert len(page.get("vega_lite_chart")) == 2  # confusion matrix + feedback heatmap


def test_the_model_names_each_set_and_marks_those_that_chose_it(api_url: str, api_app: Flask) -> None:
    api_app.extensions["buzzwatch"].predictor.metrics = {  # the flat keys `buzzwatch train` writes
        **{
            f"{name}_macro_f1": 0.7
            for name in ("test", "semeval_test", "validation_airline", "tweeteval_val")
        },
        "airline_test_ece": 0.05,
    }
    page = _page("the_model").run()
    assert not page.exception
    assert [header.value for header in page.subheader][:4] == [
        "All sources (test)",
        "SemEval (test, general tweets of the training years)",
        "Validation (airline tweets)",
        "TweetEval (validation, general tweets)",
    ]
    chose = [caption.value for caption in page.caption if "chose the model" in caption.value]
    assert len(chose) == 2  # under the two selection sets, not the test sets
    (table,) = page.dataframe
    assert list(table.value["metric"]) == ["Calibration error (ECE), Airline tweets (test)"]


def test_the_model_says_when_the_api_fails_after_its_ready_check(api_url: str, api_app: Flask) -> None:
    """The feedback table unreadable (the API answers 503) though the API is ready: it was a traceback."""
    with api_app.extensions["buzzwatch"].store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE api_feedback")
    page = _page("the_model").run()
    assert not page.exception
    assert page.error[0].value.startswith("The scoring API did not answer: the database ")
    assert "lexicon-test-1" in page.caption[0].value  # what was read before is shown


def test_watch_it_says_how_to_get_data_when_the_sink_is_empty(isolated_var_dir: Path) -> None:
    page = _page("watch_it").run()
    assert not page.exception
    assert f"No stream figures in {isolated_var_dir / 'telemetry'}" in page.info[0].value
    assert "buzzwatch demo --with-ui" in page.info[0].value
    demo_var = isolated_var_dir / "demo" / "var"  # where a running demo writes its figures
    LocalTelemetry(demo_var, role="detection").metric(NEGATIVE_SHARE, 0.2, {"brand": "airparadis"})
    page = _page("watch_it").run()
    assert f"BUZZWATCH_VAR_DIR={demo_var} buzzwatch ui" in page.info[0].value


def _record_a_stream(telemetry: Telemetry) -> None:
    """Thirty minutes of two brands' figures and one alert, as the detection service reports them."""
    start = datetime(2015, 2, 24, 9, 0, tzinfo=UTC)
    for minute in range(30):
        moment = (start + timedelta(minutes=minute, microseconds=123456)).isoformat().replace("+00:00", "Z")
        share = 0.2 if minute < 20 else 0.7
        telemetry.metric(NEGATIVE_SHARE, share, {"brand": "airparadis", "event_time": moment})
        telemetry.metric(TWEET_VOLUME, 10 + minute, {"brand": "airparadis", "event_time": moment})
        telemetry.metric(NEGATIVE_SHARE, 0.1, {"brand": "other", "event_time": moment})
        state = "learning" if minute < 5 else "normal" if minute < 20 else "bad_buzz"
        telemetry.metric(BRAND_STATE, 1.0, {"brand": "airparadis", "state": state, "event_time": moment})
    alert = Alert(
        brand="airparadis",
        fired_at=start + timedelta(minutes=25, microseconds=654321),
        window_start=start + timedelta(minutes=10),
        window_end=start + timedelta(minutes=25),
        started_at=start + timedelta(minutes=8),
        main_reason="Lost Luggage",
        negative_share=0.7,
        baseline_share=0.2,
        volume=120,
        score=5.5,
        top_terms=("lost", "luggage"),
        sample_ids=("1",),
        top_hashtags=("#lostbag",),
        reasons={"Lost Luggage": 0.8, "Flight Attendant Complaints and a very long reason": 0.2},
        samples=(
            {"id": "1", "text": "They lost my luggage again"},
            {"id": "2", "text": "Paid $50 and $20 for ![this](https://tracker.test/p.png)\n# nothing"},
        ),
    )
    telemetry.event(BAD_BUZZ_ALERT, properties={"alert": alert.to_dict()})


def _serve_a_recorded_stream(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A detection service's feed (served next to its /healthz) holding `_record_a_stream`; its URL."""
    feed = RecordingTelemetry(LocalTelemetry(tmp_path / "elsewhere", role="detection"))
    _record_a_stream(feed)
    port = free_port()
    server = serve_health(port, SimpleNamespace(totals={}, brand_states={}), feed)  # type: ignore[arg-type]
    request.addfinalizer(server.shutdown)
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    "source", ["local sink", pytest.param("detection service feed", marks=pytest.mark.integration)]
)
def test_watch_it_shows_a_brand_series_and_its_alert(
    source: str,
    isolated_var_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if source == "local sink":
        _record_a_stream(LocalTelemetry(isolated_var_dir, role="detection"))
    else:  # what the app reads on Cloud Run: the feed served next to the detection service's /healthz
        monkeypatch.setenv("BUZZWATCH_DETECTION_URL", _serve_a_recorded_stream(tmp_path, request))
    page = _page("watch_it").run()
    assert not page.exception
    assert not page.json  # nothing written by Streamlit's magic (a bare tuple once showed two raw dicts)
    # Brands by their display name with the id the data carries (config/brands.toml); unlisted ones by id.
    assert page.selectbox[0].options == ["Air Paradis (airparadis) · bad buzz", "other"]
    values = {metric.label: metric.value for metric in page.metric}
    assert values["State"] == "Bad buzz" and values["Negative share"] == "70%"
    assert "Alerts (1)" in [header.value for header in page.subheader]
    # Event time in the brand's zone (Air Paradis: Europe/Paris, UTC+1 in February), 24-hour, no seconds.
    (expander,) = page.expander
    assert expander.label == (
        "since 24 Feb 2015, 10:08 CET · alerted 24 Feb 2015, 10:25 CET · negative 70% vs 20% usually · "
        "120 tweets · new"
    )
    assert "Figures up to 24 Feb 2015, 10:29 CET (event time)." in page.caption[0].value
    markdown = " ".join(block.value for block in page.markdown)
    assert "lost, luggage" in markdown and "They lost my luggage again" in markdown
    # taken literally: no LaTeX between the dollars, no remote image loaded, no heading
    assert (
        r"> Paid \$50 and \$20 for \!\[this\]\(https\://tracker\.test/p\.png\)" + "\n" + r"> \# nothing"
        in markdown
    )
    assert "mostly Lost Luggage" in markdown
    charts = [json.loads(chart.proto.spec) for chart in page.get("vega_lite_chart")]
    share_chart, volume_chart, reasons = charts
    for spec in (share_chart, volume_chart):  # the start (dashed) and the alert marked on each chart
        assert [layer["mark"]["type"] for layer in spec["layer"]] == ["line", "rule"]
        axis = spec["layer"][0]["encoding"]["x"]
        assert axis["title"] == "event time (Europe/Paris, UTC+01:00)"
        assert axis["axis"]["format"] == "%d %b %H:%M"
        tooltips = [layer["encoding"]["tooltip"][0] for layer in spec["layer"]]  # each point's local time
        assert all(tip["field"] == "when" and tip["title"] == "time" for tip in tooltips)
    assert reasons["encoding"]["y"]["axis"]["labelLimit"] == 0  # reason labels are never cut
    page.selectbox[0].select("other").run()
    values = {metric.label: metric.value for metric in page.metric}
    assert values["Negative share"] == "10%" and values["State"] == "not reported"
    assert "Alerts (0)" in [header.value for header in page.subheader]
    (share_chart,) = [json.loads(chart.proto.spec) for chart in page.get("vega_lite_chart")]  # no volume
    assert share_chart["encoding"]["x"]["title"] == "event time (UTC)"  # a brand with no zone: UTC


def test_watch_it_opens_on_the_brand_in_a_bad_buzz_and_on_the_brand_a_link_names(
    isolated_var_dir: Path,
) -> None:
    telemetry = LocalTelemetry(isolated_var_dir, role="detection")
    moment = "2015-02-24T09:00:00Z"
    for brand, state in (("alpha", "normal"), ("beta", "learning"), ("zeta", "bad_buzz")):
        telemetry.metric(NEGATIVE_SHARE, 0.3, {"brand": brand, "event_time": moment})
        telemetry.metric(BRAND_STATE, 1.0, {"brand": brand, "state": state, "event_time": moment})
    page = _page("watch_it").run()
    assert page.selectbox[0].options == ["zeta · bad buzz", "alpha", "beta"]
    assert page.selectbox[0].value == "zeta" and page.query_params["brand"] == "zeta"
    assert {metric.label: metric.value for metric in page.metric}["State"] == "Bad buzz"
    page.selectbox[0].select("beta").run()
    assert page.query_params["brand"] == "beta"  # the address names the brand shown: a link to it
    linked = _page("watch_it")
    linked.query_params["brand"] = "alpha"
    linked.run()
    assert linked.selectbox[0].value == "alpha"
    assert {metric.label: metric.value for metric in linked.metric}["State"] == "Normal"
    linked = _page("watch_it")
    linked.query_params["brand"] = "gone"  # a brand the stream no longer reports: the default instead
    linked.run()
    assert not linked.exception and linked.selectbox[0].value == "zeta"


def test_watch_it_reads_each_feed_once_a_render(
    isolated_var_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metrics feed was read twice a render (the brand list, then the panel): twice the requests."""
    import streamlit_app.watch as watch

    _record_a_stream(LocalTelemetry(isolated_var_dir, role="detection"))
    reads: list[str] = []
    real_load = watch.load_records

    def counted(kind: str, *args: object, **kwargs: object) -> object:
        reads.append(kind)
        return real_load(kind, *args, **kwargs)

    monkeypatch.setattr(watch, "load_records", counted)
    page = _page("watch_it").run()
    assert not page.exception and "Alerts (1)" in [header.value for header in page.subheader]
    assert sorted(reads) == ["events", "metrics"]
    page.selectbox[0].select("other").run()
    assert not page.exception and sorted(reads) == ["events", "events", "metrics", "metrics"]


def test_watch_it_says_when_the_brands_file_cannot_be_read(
    isolated_var_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_a_stream(LocalTelemetry(isolated_var_dir, role="detection"))
    brands = tmp_path / "brands.toml"
    brands.write_text('[[brand]]\nname = "airparadis"\nhandles = ["AirParadis"]\ntimzone = "Europe/Paris"\n')
    monkeypatch.setenv("BUZZWATCH_BRANDS_FILE", str(brands))
    st.cache_resource.clear()  # the zones and names another test's page read
    page = _page("watch_it").run()
    assert not page.exception
    assert "The brands file cannot be read" in page.error[0].value
    assert "unknown key 'timzone' (did you mean 'timezone'?)" in page.error[0].value
    st.cache_resource.clear()


def test_watch_it_says_when_the_detection_service_cannot_be_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUZZWATCH_DETECTION_URL", "http://127.0.0.1:9")
    page = _page("watch_it").run()
    assert not page.exception
    assert "cannot read the detection service's metrics" in page.error[0].value


@pytest.mark.integration  # serves a feed
def test_watch_it_shows_the_brands_of_the_instances_that_answer_and_names_the_one_that_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """With several detection instances, one down made the whole page an error."""
    url = _serve_a_recorded_stream(tmp_path, request)
    monkeypatch.setenv("BUZZWATCH_DETECTION_URL", f"{url} http://127.0.0.1:9")
    page = _page("watch_it").run()
    assert not page.exception
    assert page.selectbox[0].options == ["Air Paradis (airparadis) · bad buzz", "other"]
    assert "Alerts (1)" in [header.value for header in page.subheader]
    (warning,) = page.warning
    assert "cannot read the detection service's metrics at http://127.0.0.1:9" in warning.value
    assert warning.value.endswith("the other instances' brands are shown")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # A misspelt BUZZWATCH_DETECTION_AUTH silently called the detection feed without its ID token (401s).
        ("BUZZWATCH_DETECTION_AUTH", "cloudrun", "BUZZWATCH_DETECTION_AUTH must be one of cloud-run"),
        ("BUZZWATCH_UI_BATCH_SIZE", "0", "BUZZWATCH_UI_BATCH_SIZE must be at least 1"),  # a CSV's traceback
    ],
)
def test_the_app_names_a_malformed_setting_instead_of_failing_on_each_page(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    page = AppTest.from_file(str(UI_DIR / "app.py"), default_timeout=TIMEOUT).run()
    assert not page.exception
    assert page.error[0].value == f"BuzzWatch cannot start: {message}, got '{value}'"


def test_the_app_names_an_api_url_that_is_no_http_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each page said the API at 'localhost:8080' "cannot be reached: InvalidSchema"."""
    monkeypatch.setenv("BUZZWATCH_API_URL", "localhost:8080")
    page = AppTest.from_file(str(UI_DIR / "app.py"), default_timeout=TIMEOUT).run()
    assert not page.exception
    assert page.error[0].value == (
        "BuzzWatch cannot start: BUZZWATCH_API_URL: 'localhost:8080' is not an http(s) address such as "
        "https://buzzwatch.example.com"
    )


def test_navigation_app_runs(api_url: str) -> None:
    page = AppTest.from_file(str(UI_DIR / "app.py"), default_timeout=TIMEOUT).run()
    assert not page.exception
    assert page.title[0].value == "Try it"
