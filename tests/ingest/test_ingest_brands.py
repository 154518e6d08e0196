"""Brand configuration and attribution."""

from __future__ import annotations

import csv

import pytest

from buzzwatch import zones
from buzzwatch.settings import REPO_ROOT
from ingest import brands as ingest_brands
from ingest.brands import BrandBook, BrandConfigError


@pytest.fixture(scope="module")
def brands() -> BrandBook:
    return BrandBook.load()


def test_the_shipped_config_has_air_paradis_and_the_airlines_of_the_data(brands):
    assert set(brands.names) == {
        "airparadis", "united", "usairways", "americanair", "southwestair", "jetblue", "virginamerica",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@united lost my bag", ("united",)),
        ("@UNITED lost my bag", ("united",)),
        ("flying Air Paradis tomorrow", ("airparadis",)),
        ("#AirParadis best crew", ("airparadis",)),
        ("air   paradis again", ("airparadis",)),
        ("@unitedfan is not the airline", ()),
        ("email me at bob@united.com", ()),
        ("the United States", ()),
        ("@AmericanAir merged with @USAirways", ("usairways", "americanair")),
        ("nothing about airlines", ()),
    ],
)
def test_attribution_by_handles_and_keywords(brands, text, expected):
    assert brands.attribute(text) == expected


def test_a_declared_brand_wins_and_aliases_resolve(brands):
    assert brands.attribute("@united late", declared="American") == ("americanair",)
    assert brands.attribute("@JetBlue thanks", declared=["Delta"]) == ("jetblue",)  # the data set's quirk
    assert brands.attribute("x", declared="Virgin America") == ("virginamerica",)
    assert brands.attribute("x", declared="Acme Air") == ("acmeair",)  # unknown brands are tracked as such
    assert brands.attribute("x", declared="united,jetblue") == ("united", "jetblue")


def test_stream_rule_tags_and_the_author_count(brands):
    assert brands.attribute("new routes!", rule_tags=["southwestair"]) == ("southwestair",)
    assert brands.attribute("new routes!", rule_tags=["not-a-brand"]) == ()
    assert brands.attribute("new routes!", author_username="SouthwestAir") == ("southwestair",)


def test_stream_rules_are_one_per_brand_within_the_length_limit(brands):
    rules = brands.rules()
    assert set(rules) == set(brands.names)
    assert rules["airparadis"] == '(@AirParadis OR from:AirParadis OR "Air Paradis" OR #AirParadis)'
    assert all(len(value) <= 512 for value in rules.values())


def test_a_keyword_the_rule_syntax_would_read_otherwise_is_quoted() -> None:
    """`(acme) OR OR)` and `(-acme)` were sent as built: a keyword "OR", one with a parenthesis or a leading
    minus (X's negation) changed the rule or broke it."""
    book = BrandBook.from_dicts(
        [{"name": "acme", "keywords": ["acme", "OR", "(acme)", "-acme", "#acme", "$ACME"]}]
    )
    assert book.rules()["acme"] == '(acme OR "OR" OR "(acme)" OR "-acme" OR #acme OR $ACME)'


def test_text_attribution_agrees_with_the_airline_column_of_the_real_data(brands):
    with open(REPO_ROOT / "data" / "airline_us" / "train.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    agree = sum(brands.resolve(row["airline"]) in brands.attribute(row["text"]) for row in rows)
    assert agree / len(rows) > 0.99


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "no brand"),
        ([{"name": "Bad Name", "handles": ["x"]}], "lower-case"),
        ([{"name": "a" * 65, "handles": ["x"]}], "'name' must be 1 to 64 lower-case letters"),
        ([{"name": "a", "handles": ["x"]}, {"name": "a", "handles": ["y"]}], "configured twice"),
        ([{"name": "a", "handles": "x"}], "list of non-empty strings"),
        ([{"name": "a", "handles": ["not a handle"]}], "not X handles"),
        # `$` matched before the line break: the handle passed, and broke the stream rule
        ([{"name": "a", "handles": ["x\n"]}], r"'handles' item 'x\\n' holds a control character"),
        ([{"name": "a", "keywords": ["late\tflight"]}], r"'keywords' item 'late\\tflight' holds a control"),
        ([{"name": "a"}], "at least one handle or keyword"),
        ([{"name": "a", "keywords": ["word"] * 100}], "longer than 512"),
        ([{"name": "a", "keywords": ['Acme "Air"']}], "a keyword cannot hold a double quote"),
        ([{"name": "a", "handles": ["x"], "timezone": "Paris"}], "unknown time zone 'Paris'"),
        ([{"name": "a", "handles": ["x"], "timezone": 1}], "IANA time zone name"),
    ],
)
def test_bad_brand_config_is_refused_with_a_clear_message(entries, message):
    with pytest.raises(BrandConfigError, match=message):
        BrandBook.from_dicts(entries)


def test_a_brands_file_is_checked_once_and_tables_given_directly_too(monkeypatch):
    """BrandBook.load made every reader's checks twice: in read_brand_tables, then again in from_dicts."""
    checked: list[str] = []
    check = zones.check_brand_tables

    def counted(tables, source):
        checked.append(source)
        check(tables, source)

    monkeypatch.setattr(zones, "check_brand_tables", counted)
    monkeypatch.setattr(ingest_brands, "check_brand_tables", counted)
    path = REPO_ROOT / "config" / "brands.toml"
    assert "united" in BrandBook.load(path).names
    assert checked == [str(path)]
    with pytest.raises(BrandConfigError, match="brand 'a' is configured twice"):
        BrandBook.from_dicts([{"name": "a", "handles": ["x"]}] * 2)
    assert checked == [str(path), "brands"]


def test_a_missing_or_broken_file_names_itself(tmp_path):
    with pytest.raises(BrandConfigError, match="not found"):
        BrandBook.load(tmp_path / "absent.toml")
    broken = tmp_path / "brands.toml"
    broken.write_text("[[brand]\nname=")
    with pytest.raises(BrandConfigError, match="not valid TOML"):
        BrandBook.load(broken)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[[brand]]\nname = "a"\nhandles = ["x"]\ntimzone = "Europe/Paris"\n',
            r"brand #1 \(a\): unknown key 'timzone' \(did you mean 'timezone'\?\)",
        ),
        ('[[brands]]\nname = "a"\nhandles = ["x"]\n', r"unknown key 'brands' \(did you mean 'brand'\?\)"),
        ('[brand]\nname = "a"\nhandles = ["x"]\n', r"each brand is a \[\[brand\]\] table"),
        ("# no brand yet\n", r"no brand is configured \(add a \[\[brand\]\] table\)"),
        ('[[brand]]\nname = "a"\nhandles = ["x"]\ndisplay_name = ["A"]\n', "'display_name' must be a string"),
    ],
)
def test_a_misspelt_or_misshapen_brands_file_is_refused_naming_the_key(tmp_path, toml, message):
    """A typo in a key was silently ignored (a `timzone` left the brand in UTC); `[brand]` was a traceback."""
    path = tmp_path / "brands.toml"
    path.write_text(toml)
    with pytest.raises(BrandConfigError, match=message):
        BrandBook.load(path)


def test_a_brands_file_that_is_not_utf8_names_itself(tmp_path):
    path = tmp_path / "brands.toml"
    path.write_bytes('[[brand]]\nname = "a"\nkeywords = ["café"]\n'.encode("utf-16"))
    with pytest.raises(BrandConfigError, match=f"brands file {path} is not UTF-8 text"):
        BrandBook.load(path)


def test_a_brands_file_that_is_a_folder_names_itself(tmp_path):
    with pytest.raises(BrandConfigError, match=f"brands file {tmp_path} cannot be read: Is a directory"):
        BrandBook.load(tmp_path)


def test_each_configured_brand_has_its_time_zone(brands):
    assert brands["airparadis"].timezone == "Europe/Paris"
    assert brands["united"].timezone == "America/Chicago"
    assert BrandBook.from_dicts([{"name": "a", "handles": ["x"]}])["a"].timezone == "UTC"
