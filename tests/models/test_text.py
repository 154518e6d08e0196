"""The tweet normaliser: one table of cases per rule, plus invariances the models rely on."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.text import (
    _STYLED_BLOCKS,
    _STYLED_KEPT,
    NEGATION_PREFIX,
    NORMALISER_VERSION,
    READS_LIKE,
    _get_tokenizer,
    _styled_letters,
    chunk_tokens,
    mark_negation,
    normalise,
    repair,
    token_chunks,
    tokenize,
)

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # HTML entities and escapes
        ("fish &amp; chips", "fish chips"),
        ("&lt;3 you", "<heart> you"),
        ("&amp;lt;3 double escaped", "<heart> double escaped"),
        ("it\\u2019s fine", "it is fine"),
        # URLs, mentions
        ("see http://t.co/AbC123 now", "see <url> now"),
        ("see https://example.com/a?b=c&d=e", "see <url>"),
        ("www.airparadis.com rocks", "<url> rocks"),
        ("@united thanks @JetBlue_2", "<user> thanks <user>"),
        ("mail me at a@b.com", "mail me at a b . com"),
        # hashtags: marker + camel-case / digit split
        ("#BadService", "<hashtag> bad service"),
        ("#IMAF2014 gala", "<hashtag> imaf <number> gala"),
        ("#getin", "<hashtag> getin"),
        ("#NotHappy", "<hashtag> not happy"),
        ("#1 fan", "<number> fan"),
        # numbers
        ("gas hit $3.39", "gas hit <number>"),
        ("at 8:30am on 09/30/12", "at <number> on <number>"),
        ("my 2nd flight, 100% late", "my <number> flight , <number> late"),
        ("kindle2", "kindle2"),
        # emoticons
        (":) :-) =) (:", "<smile> <smile> <smile> <smile>"),
        (":D xD XD", "<laugh> <laugh> <laugh>"),
        (":( :-( ): </3", "<sad> <sad> <sad> <sad>"),
        (":'( T_T", "<cry> <cry>"),
        (";) ;-)", "<wink> <wink>"),
        ("<3 <333", "<heart> <heart>"),
        (":P :/ :O", "<tong> <annoyed> <surprise>"),
        ("thanks:)", "thanks <smile>"),
        ("(on time):", "on time :"),
        ("Note:Do it", "note : do it"),
        # emojis: one name token each, skin tones and variation selectors ignored
        ("lol 😂😂", "lol :face_with_tears_of_joy: :face_with_tears_of_joy:"),
        ("👍🏽 ok", ":thumbs_up: ok"),
        ("❤️ ❤", ":red_heart: :red_heart:"),
        ("🇺🇸 🏳️‍🌈", ":united_states: :rainbow_flag:"),
        ("café 日本語", "café 日本語"),
        # elongation and repeated punctuation
        ("sooooo good", "soo <elong> good"),
        ("yesss!!!", "yess <elong> ! <repeat>"),
        ("what???", "what ? <repeat>"),
        ("really?!", "really ! ? <repeat>"),
        ("wait... ok…", "wait ... ok ..."),
        # case
        ("I LOVE this", "i love <allcaps> this"),
        ("OK Google", "ok google"),
        # contractions, negation visible
        ("don't", "do not"),
        ("I can't", "i can not"),
        ("won't", "will not"),
        ("I`d go", "i would go"),
        ("I’m here, they’re gone", "i am here , they are gone"),
        ("she\ufffds late", "she is late"),
        ("didnt dont cant", "did not do not can not"),
        ("it's John's bag", "it is john bag"),
        ("we'll see, you've won", "we will see , you have won"),
        ("DON'T", "do not <allcaps>"),
        # the airline data set's artefact
        ("I will Cancelled Flight my next flight", "i will cancel my next flight"),
        ("Cancelled Flightled again, Late Flightr", "cancelled again , later"),
        ("the chocoLate Flight was nice", "the chocolate was nice"),
        # symbols and quotes dropped; empty input
        ('"quoted" (text) [x] * ~', "quoted text x"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_normalise_rules(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not good at all, but fine", "not neg_good neg_at neg_all , but fine"),
        ("I don't like it. Love it", "i do not neg_like neg_it . love it"),
        ("never again 😡 @united!", "never neg_again :enraged_face: <user> !"),
        ("no way but yes", "no neg_way but yes"),
        ("good", "good"),
    ],
)
def test_negation_scope(text: str, expected: str) -> None:
    assert normalise(text, mark_negation_scope=True) == expected


def test_negation_scope_is_off_by_default_and_marks_only_words() -> None:
    assert NEGATION_PREFIX not in normalise("not good")
    assert mark_negation(["not", "<user>", ":red_heart:", "bad"]) == [
        "not",
        "<user>",
        ":red_heart:",
        "neg_bad",
    ]


def test_mentions_and_urls_do_not_change_the_words() -> None:
    base = tokenize("@united my flight was late again")
    assert tokenize("@JetBlue my flight was late again http://t.co/x") == [*base, "<url>"]
    assert tokenize("@user my flight was late again") == base


def test_normalise_is_idempotent_on_its_words() -> None:
    text = "@united I LOVE it!!! soooo much :) 😂 #BestDayEver don't stop http://x.co 3.5"
    once = normalise(text)
    assert "  " not in once
    assert once == once.strip()
    words = [token for token in once.split() if not token.startswith(("<", ":"))]
    assert normalise(" ".join(words)).split() == words


def test_tokens_are_lowercase_and_non_empty() -> None:
    tokens = tokenize("Hello WORLD, I'm Here 😂 #CamelCase")
    assert all(tokens)
    assert all(token == token.lower() for token in tokens)


def test_placeholder_character_in_input_is_ignored() -> None:
    assert normalise("x \ue0001 y") == "x <number> y"


def test_version_is_a_string() -> None:
    assert isinstance(NORMALISER_VERSION, str) and NORMALISER_VERSION
    assert NORMALISER_VERSION in READS_LIKE


@pytest.mark.parametrize(
    ("styled", "plain"),
    [
        ("@united 𝐰𝐨𝐫𝐬𝐭 𝐚𝐢𝐫𝐥𝐢𝐧𝐞 𝐞𝐯𝐞𝐫", "@united worst airline ever"),  # mathematical bold
        ("𝑾𝑶𝑹𝑺𝑻 flight", "WORST flight"),  # bold italic capitals: still shouted
        ("Ｉ ｈａｔｅ ｔｈｉｓ ａｉｒｌｉｎｅ", "I hate this airline"),  # fullwidth
        ("ⓜⓔⓗ service", "meh service"),  # circled
        ("ﬁne, ﬂight ok", "fine, flight ok"),  # ligatures
        ("𝟑 hours late", "3 hours late"),  # mathematical digits
        ("Cafe\u0301 delayed", "Café delayed"),  # decomposed accent (NFD) and composed (NFC)
    ],
)
def test_styled_letters_read_as_the_plain_ones(styled: str, plain: str) -> None:
    """The "fonts" tweets are written in scored a styled complaint as unknown words: bold "worst airline
    ever" was neutral (negative 0.12) where the plain one is negative (0.999)."""
    assert tokenize(styled) == tokenize(plain)


def test_emoji_and_symbols_among_the_styled_letters_stay_themselves() -> None:
    assert tokenize("Ⓜ️ ℹ️ ™ 30º 1ª") == [
        ":circled_m:",
        ":information:",
        ":trade_mark:",
        "30º",
        "1ª",
    ]


def test_the_styled_letters_kept_are_exactly_the_emoji_among_them() -> None:
    """`emoji` is imported only when the first tweet is tokenized, so the emoji among the styled letters are
    listed by hand: this checks the list against the package, and each styled letter is an ASCII letter
    or digit once folded."""
    import emoji

    candidates = {
        chr(code)
        for start, end in _STYLED_BLOCKS
        for code in range(start, end)
        if unicodedata.normalize("NFKC", chr(code)).isascii()
        and unicodedata.normalize("NFKC", chr(code)).isalnum()
        and unicodedata.normalize("NFKC", chr(code)) != chr(code)
    }
    assert {character for character in candidates if emoji.is_emoji(character)} == set(_STYLED_KEPT) - set(
        "ªº"
    )
    assert set(_styled_letters()) == {ord(character) for character in candidates - set(_STYLED_KEPT)}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_clean_tokens(text: str) -> None:
    tokens = tokenize(text)
    assert all(token and not any(char.isspace() for char in token) for token in tokens)
    assert normalise(text) == " ".join(tokens)
    assert tokenize(text) == tokens


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(["😂", "👍🏽", "❤️", "🇺🇸", "#️⃣", "<3", ":)", " ", "a", "!", "&amp;", "`"]), max_size=30
    )
)
def test_emoji_and_emoticon_soup_never_leaks_placeholders(parts: list[str]) -> None:
    assert all("\ue000" not in token for token in tokenize("".join(parts)))


def test_non_string_input() -> None:
    assert tokenize(None) == []
    assert tokenize(3.5) == ["<number>"]


def whole_text_tokens(text: str) -> list[str]:
    """The tokens read from the whole repaired text in one scan, as before chunks were kept (063fb0c)."""
    tokenizer = _get_tokenizer()
    repaired = repair(text)
    return tokenizer.scan(repaired if repaired.isascii() else tokenizer.mark_emojis(repaired))


# Where a chunk's tokens could depend on its neighbours: look-behinds and look-aheads at a chunk's edges,
# every kind of whitespace (and characters that look like it but are not), emojis inside words.
EDGE_CASES = [
    "a-5 x.5 -5 +3.2 .5 5. 1st 2nd, 8:30am 100%!",
    "fish&#tag #tag&x x#tag #2015 #tag!!",
    "thanks:) (: hi(: :)) ):( xD: :-D;) T_T",
    "hi\u00a0there a\u2003b a\u200bb a\x1cb a\tb\nc\r\nd  e",
    "hi😭there 😭😭 🇺🇸🇺🇸 👨‍👩‍👧 ok👍🏽ok ℹ️x",
    "http://t.co/x, ok www.x.com!!! (http://t.co/y) @user's @a@b",
    "don't I'd ''quoted'' rock'n'roll SOOOO!!! cooool...",
    "x \ue0001 y &amp;lt;3 Late Flightr Cancelled Flightled",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_chunk_by_chunk_tokens_are_the_whole_texts(text: str) -> None:
    assert tokenize(text) == whole_text_tokens(text)
    assert [token for chunk in token_chunks(text) for token in chunk_tokens(chunk)] == tokenize(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "a",
                "Ab",
                "5",
                "-",
                "+",
                ".",
                ",",
                ":",
                ";",
                ")",
                "(",
                "#",
                "@",
                "&",
                "'",
                "!",
                "?",
                "x",
                "D",
                "http://t",
                "www.",
                "😂",
                "🏽",
                "\u200d",
                " ",
                "\t",
                "\u00a0",
                "\u3000",
                "\x1c",
                "\u200b",
            ]
        ),
        max_size=40,
    )
)
def test_any_soup_of_edge_characters_reads_the_same_by_chunks(parts: list[str]) -> None:
    text = "".join(parts)
    assert tokenize(text) == whole_text_tokens(text)


def test_the_normalised_real_tweets_are_those_of_the_reading_before_chunks() -> None:
    """The normaliser's output on two real data files, pinned: a digest of what 063fb0c's normaliser gave."""
    digest = hashlib.sha256()
    for name in ("airline_us/train.csv", "semeval2017_task4a/twitter-2016test.csv"):
        for text in pd.read_csv(DATA_DIR / name, dtype=str, keep_default_na=False)["text"]:
            line = normalise(text) + "\t" + normalise(text, mark_negation_scope=True) + "\n"
            digest.update(line.encode())
    assert digest.hexdigest() == "1bf5c0532871d79b285e879a03cde2ab91ba6c3ee7e0b2dfa9a1f49b107d6cdf"


@pytest.mark.slow
def test_every_data_files_tweets_read_the_same_by_chunks() -> None:
    """All 298,494 texts of data/'s CSV files: chunk by chunk, the tokens of one scan of the whole text."""
    checked = 0
    for path in sorted(DATA_DIR.rglob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "text" not in frame.columns:
            continue
        for text in frame["text"]:
            assert tokenize(text) == whole_text_tokens(text), (path.name, text)
            checked += 1
    assert checked > 250_000
