"""Each brand as a person reads it (the e-mail, the app): its display name and its time zone; the JSON
keeps the brand id and UTC. And each brand value a data file writes as the brand id (`BrandIds`).

All come from the brand's [[brand]] table in the brands file (config/brands.toml, or
BUZZWATCH_BRANDS_FILE): `display_name` (else the id) and `timezone`, an IANA name such as "Europe/Paris";
a brand without one, or a brand the file does not list, reads UTC. Every reader of the file (replay, detect,
the app, ingest) checks it the same way (`check_brand_tables`), and a process reads it once (`BrandsFile`).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from buzzwatch.schema import CONTROL_CHARACTER, MAX_BRAND_CHARS
from buzzwatch.settings import REPO_ROOT, SettingsError, env_str

log = logging.getLogger(__name__)

DEFAULT_BRANDS_FILE = REPO_ROOT / "config" / "brands.toml"
DEFAULT_ZONE = "UTC"
BRAND_KEYS = ("name", "display_name", "timezone", "handles", "keywords", "aliases")  # of a [[brand]] table
BRAND_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # a configured brand's name; a file's values slugify to one
BRAND_SEPARATORS = re.compile(r"[,;|]")  # between the brands of one declared value ("united,delta")
# The fields (columns) a data file declares a tweet's brand(s) in, the first non-empty one read: `airline` is
# the Twitter US Airline Sentiment data set's.
BRAND_FIELDS = ("brands", "brand", "airline")


def brands_file(env: Mapping[str, str] | None = None) -> Path:
    """The brands file: BUZZWATCH_BRANDS_FILE, else config/brands.toml."""
    env = os.environ if env is None else env
    return Path(env_str(env, "BUZZWATCH_BRANDS_FILE", str(DEFAULT_BRANDS_FILE)) or DEFAULT_BRANDS_FILE)


def parse_zone(name: object, where: str) -> ZoneInfo:
    """An IANA time zone by name; SettingsError naming `where` when it is not one."""
    if not isinstance(name, str) or not name.strip():
        raise SettingsError(f"{where}: 'timezone' must be an IANA time zone name such as 'Europe/Paris'")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(
            f"{where}: unknown time zone {name!r} (use an IANA name such as 'Europe/Paris')"
        ) from exc


def _unknown_key(key: str, known: tuple[str, ...]) -> str:
    """ "unknown key 'timzone' (did you mean 'timezone'?)": a misspelt key must not be a silent default."""
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; the keys are {', '.join(known)}"
    return f"unknown key {key!r}{hint}"


def read_brand_tables(path: Path) -> list[dict[str, object]]:
    """The [[brand]] tables of a brands file, in order; FileNotFoundError when there is no file.

    A path that cannot be read (a folder), a file that is not UTF-8 TOML, a key at the top other than
    [[brand]], a `brand` that is not an array of tables, or a key a [[brand]] table does not have (a typo) is
    a SettingsError naming the file and brand, and so is a value `check_brand_tables` refuses."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except OSError as exc:  # a folder, a file this user may not read: was a traceback in every command
        raise SettingsError(f"brands file {path} cannot be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SettingsError(f"brands file {path} is not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"brands file {path} is not valid TOML: {exc}") from exc
    for key in document:
        if key != "brand":
            raise SettingsError(f"brands file {path}: {_unknown_key(key, ('brand',))} at the top")
    tables = document.get("brand", [])
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise SettingsError(f"brands file {path}: each brand is a [[brand]] table (double brackets)")
    for index, table in enumerate(tables):
        for key in table:
            if key not in BRAND_KEYS:
                name = f" ({table['name']})" if isinstance(table.get("name"), str) else ""
                raise SettingsError(f"{path}: brand #{index + 1}{name}: {_unknown_key(key, BRAND_KEYS)}")
    check_brand_tables(tables, str(path))
    return tables


def check_brand_tables(tables: Iterable[Mapping[str, object]], source: str) -> None:
    """The checks every reader of a brands file makes (replay, detect, ingest, the app), so that a file one
    accepts no other refuses: each `name` a brand id (at most MAX_BRAND_CHARS), never twice; `timezone` an
    IANA zone; `display_name` a string and `handles`, `keywords`, `aliases` lists of strings, each with a
    letter or digit and none holding a control character; no spelling (id, display name, alias, handle; as
    `BrandIds` compares them) two brands'. A SettingsError names `source`, the brand and the field. (Ingest
    adds its own: X handles, a stream rule.)"""
    seen: set[str] = set()
    claimed: dict[str, str] = {}  # spelling key -> the brand it names
    for index, entry in enumerate(tables):
        where = f"{source}: brand #{index + 1}"
        name = entry.get("name")
        if not isinstance(name, str) or not BRAND_ID.match(name) or len(name) > MAX_BRAND_CHARS:
            raise SettingsError(
                f"{where}: 'name' must be 1 to {MAX_BRAND_CHARS} lower-case letters, digits, '-' or '_'"
            )
        if name in seen:
            raise SettingsError(f"{where}: brand {name!r} is configured twice")
        seen.add(name)
        where = f"{where} ({name})"
        for key in ("handles", "keywords", "aliases"):
            value = entry.get(key, [])
            if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
                raise SettingsError(f"{where}: {key!r} must be a list of non-empty strings")
            for item in value:
                _refuse_control(item, f"{where}: {key!r} item")
                if not any(char.isalnum() for char in item):  # " " as a keyword matched almost every tweet
                    raise SettingsError(f"{where}: {key!r} item {item!r} has no letter or digit")
        parse_zone(entry.get("timezone", DEFAULT_ZONE), where)
        shown = entry.get("display_name", name)
        if not isinstance(shown, str):
            raise SettingsError(f"{where}: 'display_name' must be a string")
        _refuse_control(shown, f"{where}: 'display_name'")
        for spelling in (name, *spellings(entry)[1]):
            key = _spelling_key(spelling)
            if claimed.setdefault(key, name) != name:  # a data file naming it would be either brand's
                raise SettingsError(
                    f"{where}: {spelling!r} also names brand {claimed[key]!r} (its id, display name, an "
                    "alias or a handle, case, spaces and punctuation aside): keep it for one of them"
                )


def _refuse_control(value: str, field: str) -> None:
    """SettingsError naming `field` when `value` holds a control character (the schema's CONTROL_CHARACTER,
    which no tweet's brand holds either). A display name titles the brand's alert mails, whose subject may
    not break a line (each mail failed to build, the alert was never sent); handles and keywords make its X
    stream rule (a handle `united` and a line break passed ingest's X-handle check and broke the rule)."""
    found = CONTROL_CHARACTER.search(value)
    if found is not None:
        raise SettingsError(f"{field} {value!r} holds a control character ({found.group()!r}); remove it")


@dataclass(frozen=True)
class BrandsFile:
    """The checked [[brand]] tables of one brands file, read once, and what each reader takes from them (a
    process reads the file once: one view of it, one warning when it is missing). `BrandsFile()`: no brand
    configured, every brand read by its id, in UTC."""

    path: Path | None = None
    tables: tuple[Mapping[str, object], ...] = ()

    @classmethod
    def read(cls, path: Path | None = None) -> BrandsFile:
        """The brands file's tables (`path`, else BUZZWATCH_BRANDS_FILE or config/brands.toml); none, logged,
        when config/brands.toml is not there. A file named (`path`, the variable) that does not exist is a
        SettingsError, as a file that is not valid TOML or a zone that does not exist (`read_brand_tables`):
        a misspelt path read every brand by id, in UTC, the warning easy to miss."""
        path = path or brands_file()
        try:
            tables = read_brand_tables(path)
        except FileNotFoundError:
            if path.resolve() != DEFAULT_BRANDS_FILE.resolve():
                raise SettingsError(
                    f"brands file {path} does not exist (BUZZWATCH_BRANDS_FILE or --brands names it)"
                ) from None
            log.warning("no brands file: brands read by id, times in UTC", extra={"path": str(path)})
            tables = []
        return cls(path, tuple(tables))

    def zones(self) -> dict[str, ZoneInfo]:
        """Brand id -> its time zone (UTC for a brand whose table names none)."""
        return {
            str(entry["name"]): parse_zone(
                entry.get("timezone", DEFAULT_ZONE), f"{self.path}: brand {entry['name']!r}"
            )
            for entry in self.tables
        }

    def configured_zones(self) -> dict[str, str]:
        """Brand id -> the IANA zone its table names, for the brands whose table names one (the detector's
        day shape of a new brand follows it; a brand without one keeps the shipped day, see
        `worker.detection.config`)."""
        return {
            str(entry["name"]): parse_zone(entry["timezone"], f"{self.path}: brand {entry['name']!r}").key
            for entry in self.tables
            if "timezone" in entry
        }

    def names(self) -> dict[str, str]:
        """Brand id -> the name a person knows it by (`display_name`, else the id)."""
        return {str(entry["name"]): display_name(entry) for entry in self.tables}

    def ids(self) -> BrandIds:
        """The data files' brand values as these brands' ids (`BrandIds`; none configured: each value
        slugified)."""
        return BrandIds(map(spellings, self.tables))


def display_name(entry: Mapping[str, object]) -> str:
    """The name a person knows a checked [[brand]] table's brand by: its `display_name`, else its id."""
    return str(entry.get("display_name") or entry["name"])


def slugify(value: str) -> str:
    """A brand id from a free-text name: lower-case letters and digits, accents folded ("US Airways" ->
    usairways, "Éole Air" -> eoleair); a name in a script without Latin letters slugifies to ''."""
    folded = unicodedata.normalize("NFKD", value.lower())
    return re.sub(r"[^a-z0-9]", "", folded)


def _spelling_key(value: str) -> str:
    """What two spellings of one brand share: its slug, else (a name in another script) its casefolded
    letters and digits, so a configured brand may list "日本航空" among its aliases."""
    return slugify(value) or re.sub(r"[\W_]", "", unicodedata.normalize("NFKC", value).casefold())


def split_brands(value: str) -> list[str]:
    """The brands one declared value names, split at , ; or | ("united,delta" -> united, delta)."""
    return [part for part in BRAND_SEPARATORS.split(value) if part.strip()]


class BrandIds:
    """A data file's brand value as a brand id, the one rule of every reader (the ingester, `buzzwatch
    replay`): a configured brand when the value is one of its spellings (id, display name, alias, handle;
    case, spaces and punctuation aside), else the value slugified, tracked as a brand of its own."""

    def __init__(self, spellings: Iterable[tuple[str, Iterable[str]]]) -> None:
        """`spellings`: (brand id, its other spellings) per brand; a spelling two brands share (which
        `check_brand_tables` refuses in a brands file) is the first's."""
        self._by_key: dict[str, str] = {}
        for name, others in spellings:
            for spelling in (name, *others):
                if key := _spelling_key(spelling):
                    self._by_key.setdefault(key, name)

    def resolve(self, value: str) -> str:
        """The brand id of one value ("United", " UNITED ", "united" -> united); '' when it has no Latin
        letter or digit and is no configured brand's spelling."""
        slug = slugify(value)  # the key of every value with a Latin letter or digit (`_spelling_key`)
        return self._by_key.get(slug or _spelling_key(value), slug)

    def resolve_all(self, values: Iterable[str]) -> tuple[str, ...]:
        """The brand ids of several values, in order, each once; a value without a letter or digit names
        none."""
        return tuple(dict.fromkeys(brand for brand in map(self.resolve, values) if brand))


def spellings(entry: Mapping[str, object]) -> tuple[str, list[str]]:
    """A [[brand]] table's id and the other spellings a data file may name the brand by (display name,
    aliases, handles), as `BrandIds` takes them; a list that is not one of strings gives none (ingest's
    `BrandBook` refuses it)."""
    others = [entry.get("display_name"), *_listed(entry, "aliases"), *_listed(entry, "handles")]
    return str(entry["name"]), [other for other in others if isinstance(other, str)]


def _listed(entry: Mapping[str, object], key: str) -> list[object]:
    """The items of a [[brand]] list value (a list, or a tuple as a `Brand` holds it; else none)."""
    value = entry.get(key)
    return list(value) if isinstance(value, list | tuple) else []


def brand_label(brand: str, names: Mapping[str, str]) -> str:
    """'United Airlines (united)': the display name with the id the data carries; the bare id if no other."""
    shown = names.get(brand, brand)
    return brand if shown == brand else f"{shown} ({brand})"


def zone_of(brand: str, zones: Mapping[str, tzinfo]) -> tzinfo:
    """The brand's zone, UTC when it has none."""
    return zones.get(brand, UTC)


def local_time(moment: datetime, zone: tzinfo, with_date: bool = True) -> str:
    """A moment as a person reads it in `zone`: '23 Feb 2015, 10:41 CET' (or '10:41 CET')."""
    local = moment.astimezone(zone)
    clock = f"{local:%H:%M} {local.tzname() or ''}".rstrip()
    return f"{local.day} {local:%b %Y}, {clock}" if with_date else clock
