"""Language identification: the source's tag first, CLD2 otherwise, `und` when a tweet cannot be told."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.language import _NOISE, UNDETERMINED, Language, LanguageGate, detect, gate_for, normalise_code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@AirParadis mon vol est annulé encore une fois, service client nul", "fr"),
        ("Vol retardé de trois heures et aucune information. Merci Air Paradis...", "fr"),
        ("@AirParadis perdieron mi maleta otra vez, qué vergüenza de servicio", "es"),
        ("@united lost my bag again, thanks for nothing", "en"),
        ("@AirParadis not bad at all, no complaints about the crew today", "en"),
        ("😡😡😡", UNDETERMINED),  # emoji only: nothing to tell, the model reads emoji
        ("@delta ✈️ great", UNDETERMINED),  # too short to tell
        ("https://t.co/abc @AirParadis #fail", UNDETERMINED),  # links, mentions and hashtags only
        ("bad \ud800 surrogate in a longer sentence about a flight", UNDETERMINED),  # broken Unicode
        ("", UNDETERMINED),
    ],
)
def test_detect(text: str, expected: str) -> None:
    assert detect(text) == expected


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("en", "en"),
        ("en-GB", "en"),
        ("FR", "fr"),
        ("und", "und"),
        ("zxx", "und"),
        ("qme", "und"),
        (None, "und"),
        ("", "und"),
        ("zh_TW", "zh"),
        ("iw", "he"),
    ],
)
def test_normalise_code(tag: str | None, expected: str) -> None:
    assert normalise_code(tag) == expected


def test_the_sources_tag_wins_over_detection_and_a_non_language_tag_does_not() -> None:
    gate = LanguageGate(("en",))
    french = "mon vol est annulé encore une fois, le service client est nul"
    assert gate.identify(french) == Language("fr", False)
    assert gate.identify(french, hint="en") == Language("en", True)  # the X API said English
    assert gate.identify(french, hint="und") == Language("fr", False)  # X could not tell: detect
    assert gate.identify("short", hint="de") == Language("de", False)


def test_undetermined_tweets_are_supported() -> None:
    assert LanguageGate(("en",)).identify("😡😡😡") == Language(UNDETERMINED, True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Too short for CLD2 to tell reliably, yet no short English: every letter of another script. These
        # were `und` and supported, so the model's guess (neutral) counted as if it had read them.
        ("服务太差了", Language("zh", False)),
        ("最悪のサービス", Language("ja", False)),
        ("خدمة سيئة", Language("ar", False)),
        ("서비스 최악", Language("ko", False)),
        ("@united ужасно", Language("ru", False)),
        # Still short English, or nothing to tell: Latin letters in any "font", emoticons that borrow a
        # lone letter of another script, a two-letter word, digits of another script.
        ("@united 𝐰𝐨𝐫𝐬𝐭 𝐚𝐢𝐫𝐥𝐢𝐧𝐞", Language(UNDETERMINED, True)),
        ("Ｉ ｈａｔｅ ｉｔ", Language(UNDETERMINED, True)),
        ("ˢᴵᴺᶜᴱ ᴱᵛᴱᴿᵞᵀᴴᴵᴺᴳ", Language(UNDETERMINED, True)),
        ("Café olé", Language(UNDETERMINED, True)),
        ("@delta ಠ_ಠ", Language(UNDETERMINED, True)),
        ("¯\\_(ツ)_/¯", Language(UNDETERMINED, True)),
        ("(づ｡◕‿‿◕｡)づ", Language(UNDETERMINED, True)),
        ("ок", Language(UNDETERMINED, True)),
        ("١٢٣ 😡", Language(UNDETERMINED, True)),
    ],
)
def test_a_short_text_with_no_latin_letter_is_not_read_as_short_english(
    text: str, expected: Language
) -> None:
    assert LanguageGate(("en",)).identify(text) == expected


def test_a_model_that_reads_a_script_supports_its_short_texts() -> None:
    assert LanguageGate(("en", "ko")).identify("서비스 최악") == Language("ko", True)


def test_a_model_that_reads_french_supports_it() -> None:
    class Bilingual:
        languages = ("en", "fr")

    gate = gate_for(Bilingual())
    assert gate.identify("mon vol est annulé encore une fois, le service client est nul").supported
    assert gate_for(object()).supported == frozenset({"en"})  # no `languages`: English


def test_identify_many_checks_its_hints() -> None:
    gate = LanguageGate()
    assert [x.code for x in gate.identify_many(["a", "b"], ["fr", None])] == ["fr", "und"]
    with pytest.raises(ValueError, match="one entry per text"):
        gate.identify_many(["a", "b"], ["fr"])
    with pytest.raises(ValueError, match="at least one language"):
        LanguageGate(("und",))


def test_english_tweets_are_almost_never_flagged() -> None:
    """On 3,000 real airline tweets (English), at most 0.2% are called another language."""
    airline = Path(__file__).resolve().parents[2] / "data" / "airline_us" / "train.csv"
    texts = pd.read_csv(airline, dtype=str, keep_default_na=False)["text"].head(3000).tolist()
    languages = LanguageGate().identify_many(texts)
    flagged = [text for text, language in zip(texts, languages, strict=True) if not language.supported]
    assert len(flagged) <= 0.002 * len(texts), flagged[:10]


# The noise pattern before its look-ahead (063fb0c): the reference the faster one must equal.
_NOISE_BEFORE = re.compile(r"https?://\S+|www\.\S+|[@#]\w+|\bRT\b|&\w+;", re.IGNORECASE)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "http://a",
                "HTTPS://b",
                "httpſ://c",
                "www.x",
                "WWW.Y",
                "@u",
                "#t",
                "RT",
                "rT",
                "art",
                "RTs",
                "&amp;",
                "&x;",
                "K",
                "ſ",
                "İ",
                "ı",
                "h",
                "w",
                "r",
                " ",
                "\u00a0",
                "a",
                "1",
                "_",
                ".",
                ":",
            ]
        ),
        max_size=30,
    )
)
def test_the_noise_look_ahead_finds_what_the_pattern_alone_finds(parts: list[str]) -> None:
    text = "".join(parts)
    assert _NOISE.sub(" ", text) == _NOISE_BEFORE.sub(" ", text)


@pytest.mark.slow
def test_the_noise_look_ahead_finds_the_same_in_every_data_files_tweets() -> None:
    checked = 0
    for path in sorted((Path(__file__).resolve().parents[2] / "data").rglob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for text in frame["text"] if "text" in frame.columns else ():
            assert _NOISE.sub(" ", text) == _NOISE_BEFORE.sub(" ", text), (path.name, text)
            checked += 1
    assert checked > 250_000
