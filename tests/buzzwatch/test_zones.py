"""The brands file as the detection service and the app read it: each brand's zone and display name."""

from pathlib import Path

import pytest

from buzzwatch.settings import SettingsError
from buzzwatch.zones import BrandsFile


def test_a_misspelt_key_stops_the_readers_instead_of_leaving_the_brand_in_utc(tmp_path: Path) -> None:
    """The detection service's mails and the app's charts read `timezone`; a `time_zone` was ignored."""
    path = tmp_path / "brands.toml"
    path.write_text('[[brand]]\nname = "united"\nhandles = ["united"]\ntime_zone = "America/Chicago"\n')
    with pytest.raises(SettingsError, match=r"brand #1 \(united\): unknown key 'time_zone' \(did you mean"):
        BrandsFile.read(path)
    path.write_text('[[brand]]\nname = "united"\nhandles = ["united"]\ntimezone = "America/Chicago"\n')
    assert str(BrandsFile.read(path).zones()["united"]) == "America/Chicago"


def test_a_brands_file_that_cannot_be_read_stops_every_reader_with_one_line(tmp_path: Path) -> None:
    """BUZZWATCH_BRANDS_FILE naming a folder (or a file inside a file) was an IsADirectoryError traceback
    from `buzzwatch replay`, `ingest` and `detect`."""
    inside_a_file = tmp_path / "brands.toml"
    inside_a_file.write_text("")
    for path in (tmp_path, inside_a_file / "brands.toml"):
        with pytest.raises(SettingsError, match=f"brands file {path} cannot be read: (Is|Not) a directory"):
            BrandsFile.read(path)


def test_a_display_name_on_two_lines_stops_the_readers_of_names(tmp_path: Path) -> None:
    """It titles the brand's alert mails: no subject could be built, and every alert of the brand stayed in
    the outbox, never sent."""
    path = tmp_path / "brands.toml"
    path.write_text(
        '[[brand]]\nname = "united"\nhandles = ["united"]\ndisplay_name = """United\nAirlines"""\n'
    )
    with pytest.raises(
        SettingsError,
        match=r"brand #1 \(united\): 'display_name' 'United\\nAirlines' holds a control character",
    ):
        BrandsFile.read(path)


UNITED = 'name = "united"\nhandles = ["united"]\n'


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ([UNITED, UNITED], r"brand #2: brand 'united' is configured twice"),
        ([UNITED + 'timezone = "Chicago"\n'], r"brand #1 \(united\): unknown time zone 'Chicago'"),
        (['handles = ["united"]\n'], r"brand #1: 'name' must be 1 to 64 lower-case letters"),
        (['name = "United Airlines"\n'], r"brand #1: 'name' must be 1 to 64 lower-case letters"),
        ([f'name = "{"a" * 65}"\n'], r"brand #1: 'name' must be 1 to 64 lower-case letters"),
        (
            [UNITED + 'aliases = "UA"\n'],
            r"brand #1 \(united\): 'aliases' must be a list of non-empty strings",
        ),
        ([UNITED + "display_name = 7\n"], r"brand #1 \(united\): 'display_name' must be a string"),
        (
            [UNITED + 'display_name = "United\\tAirlines"\n'],
            r"brand #1 \(united\): 'display_name' 'United\\tAirlines' holds a control character \('\\t'\)",
        ),
        (
            ['name = "united"\nhandles = ["united\\n"]\n'],
            r"brand #1 \(united\): 'handles' item 'united\\n' holds a control character \('\\n'\)",
        ),
        (  # a blank keyword became a rule matching almost every tweet: all of them were this brand's
            [UNITED + 'keywords = ["Acme", " "]\n'],
            r"brand #1 \(united\): 'keywords' item ' ' has no letter or digit",
        ),
        ([UNITED + 'aliases = ["!!"]\n'], r"brand #1 \(united\): 'aliases' item '!!' has no letter or digit"),
        (
            [UNITED + 'keywords = ["late\\u0000flight"]\n'],
            r"brand #1 \(united\): 'keywords' item 'late\\x00flight' holds a control character",
        ),
        (
            [UNITED + 'aliases = ["U\\u001bA"]\n'],
            r"brand #1 \(united\): 'aliases' item 'U\\x1bA' holds a control character \('\\x1b'\)",
        ),
        (
            [UNITED, 'name = "jetblue"\naliases = ["JetBlue", "United"]\n'],
            r"brand #2 \(jetblue\): 'United' also names brand 'united'",
        ),
        (
            ['name = "jetblue"\naliases = ["Delta"]\n', 'name = "delta"\ndisplay_name = "Delta Air Lines"\n'],
            r"brand #2 \(delta\): 'delta' also names brand 'jetblue'",
        ),
        (
            [UNITED + 'display_name = "United"\n', 'name = "ua"\nhandles = ["UNITED"]\n'],
            r"brand #2 \(ua\): 'UNITED' also names brand 'united'",
        ),
    ],
    ids=[
        "twice",
        "zone",
        "no-name",
        "name-not-an-id",
        "name-too-long",
        "aliases",
        "display-name",
        "display-name-tab",
        "handle-line-break",
        "keyword-blank",
        "alias-no-letter",
        "keyword-nul",
        "alias-escape",
        "alias-of-another",
        "id-an-alias-of-another",
        "handle-of-another",
    ],
)
def test_every_reader_refuses_what_ingest_refuses(tmp_path: Path, tables: list[str], message: str) -> None:
    """`buzzwatch replay` and `detect` took a brand configured twice (the first spelling's, the last zone),
    an unknown zone (replay) and a table without a name (skipped) that `ingest` refused: one check now
    (`buzzwatch.zones.check_brand_tables`; ingest's own tests hold its messages). Of the control
    characters, a display name was refused only a line break (a tab, a NUL titled the alert mails), and a
    handle, keyword or alias none: `united` and a line break passed ingest's X-handle check into the
    stream rule. A spelling two brands share went to the first silently: a `delta` brand added after the
    shipped jetblue, whose alias is "Delta", counted its own rows as jetblue's."""
    path = tmp_path / "brands.toml"
    path.write_text("".join(f"[[brand]]\n{table}" for table in tables))
    with pytest.raises(SettingsError, match=message):
        BrandsFile.read(path)


def test_a_brand_value_is_its_brand_id_whatever_its_case_spaces_or_configured_spelling(
    tmp_path: Path,
) -> None:
    path = tmp_path / "brands.toml"
    path.write_text(
        '[[brand]]\nname = "united"\ndisplay_name = "United Airlines"\nhandles = ["@United"]\n'
        'aliases = ["UA"]\n[[brand]]\nname = "jetblue"\naliases = ["Delta"]\nhandles = ["JetBlue"]\n'
        '[[brand]]\nname = "jal"\naliases = ["日本航空"]\n'
    )
    ids = BrandsFile.read(path).ids()
    values = [
        "United",
        " UNITED ",
        "united",
        "United Airlines",
        "@united",
        "u.a.",
        "Delta",
        "JetBlue",
        "Sky Lark",
    ]
    assert [ids.resolve(v) for v in values] == ["united"] * 6 + ["jetblue", "jetblue", "skylark"]
    assert ids.resolve("!!!") == "" and ids.resolve("大韓航空") == ""  # no letter or digit of an id
    assert ids.resolve(" 日本航空 ") == "jal" and ids.resolve("Éole") == "eole"  # an alias; accents folded
    assert ids.resolve_all(["Delta", "jal", "DELTA", "?"]) == ("jetblue", "jal")  # in order, each once
    no_file = BrandsFile().ids()  # no brand configured: each value slugified
    assert [no_file.resolve(v) for v in values] == [
        *["united"] * 3,
        "unitedairlines",
        "united",
        "ua",
        "delta",
        "jetblue",
        "skylark",
    ]
