"""Configured brands, and the attribution of each tweet to its brand(s).

A tweet belongs to a brand when a data file says so (a `brand`/`airline` column, matched against the brand's
name and aliases), when an X filtered-stream rule tagged with the brand matched it, or when its text
mentions one of the brand's handles or keywords. The filtered-stream rules are built from the same
configuration, one rule per brand tagged with the brand's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from buzzwatch.settings import SettingsError
from buzzwatch.zones import (
    DEFAULT_BRANDS_FILE,
    DEFAULT_ZONE,
    BrandIds,
    check_brand_tables,
    display_name,
    parse_zone,
    read_brand_tables,
    spellings,
    split_brands,
)

DEFAULT_BRANDS_PATH = DEFAULT_BRANDS_FILE
MAX_RULE_CHARS = 512  # the X API v2 filtered-stream rule length limit of the basic access levels
_HANDLE = re.compile(r"^@?\w{1,15}$")


class BrandConfigError(ValueError):
    """The brands file is missing or malformed; the message names the brand and field."""


@dataclass(frozen=True)
class Brand:
    """One watched brand."""

    name: str
    display_name: str
    handles: tuple[str, ...]
    keywords: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    timezone: str = DEFAULT_ZONE  # IANA name: the zone its team reads times in (buzzwatch.zones)

    def rule(self, suffix: str = "") -> str:
        """The X API v2 filtered-stream rule that catches this brand's tweets."""
        terms: list[str] = []
        for handle in self.handles:
            terms += [f"@{handle}", f"from:{handle}"]
        for keyword in self.keywords:  # quoted unless a plain word, #hashtag or $cashtag: "OR", "(x)", "-x"
            plain = _RULE_WORD.fullmatch(keyword) and keyword.upper() not in _RULE_OPERATORS
            terms.append(keyword if plain else f'"{keyword}"')
        value = f"({' OR '.join(terms)})"
        return f"{value} {suffix}".strip() if suffix else value


_RULE_WORD = re.compile(r"[#$]?\w+")  # a keyword the X rule syntax reads as one term without quotes
_RULE_OPERATORS = frozenset({"OR", "AND"})


def _pattern(brand: Brand) -> re.Pattern[str]:
    parts = [rf"(?<![\w@])@{re.escape(handle)}\b" for handle in brand.handles]
    for keyword in brand.keywords:
        words = [re.escape(word) for word in keyword.split()]
        parts.append(r"(?<![\w#@])" + r"\s+".join(words) + r"(?!\w)")
    return re.compile("|".join(parts), re.IGNORECASE)


class BrandBook:
    """The configured brands, with attribution by data column, stream rule tag or text."""

    def __init__(self, brands: Sequence[Brand]) -> None:
        if not brands:
            raise BrandConfigError("no brand is configured")
        self.brands = tuple(brands)
        self._by_name = {brand.name: brand for brand in self.brands}
        self._patterns = [(brand.name, _pattern(brand)) for brand in self.brands]
        self._ids = BrandIds(spellings(asdict(brand)) for brand in self.brands)

    @classmethod
    def load(cls, path: Path | str | None = None) -> BrandBook:
        """Read a brands TOML file (default config/brands.toml)."""
        path = Path(path) if path else DEFAULT_BRANDS_PATH
        try:
            tables = read_brand_tables(path)
        except FileNotFoundError as exc:
            raise BrandConfigError(f"brands file not found: {path}") from exc
        except SettingsError as exc:
            raise BrandConfigError(str(exc)) from exc
        if not tables:
            raise BrandConfigError(f"brands file {path}: no brand is configured (add a [[brand]] table)")
        return cls._from_checked(tables, str(path))  # read_brand_tables made check_brand_tables' checks

    @classmethod
    def from_dicts(cls, entries: Iterable[dict[str, object]], source: str = "brands") -> BrandBook:
        """Validate [[brand]] tables: every reader's checks (`check_brand_tables`), then ingest's own."""
        entries = list(entries)
        try:
            check_brand_tables(entries, source)
        except SettingsError as exc:
            raise BrandConfigError(str(exc)) from exc
        return cls._from_checked(entries, source)

    @classmethod
    def _from_checked(cls, entries: list[dict[str, object]], source: str) -> BrandBook:
        """The brands of tables `check_brand_tables` passed, after ingest's own checks (X handles, a handle or
        keyword, the stream rule's length)."""
        brands: list[Brand] = []
        for index, entry in enumerate(entries):
            name = str(entry["name"])
            where = f"{source}: brand #{index + 1}"
            lists = {key: tuple(entry.get(key, [])) for key in ("handles", "keywords", "aliases")}
            bad_handles = [handle for handle in lists["handles"] if not _HANDLE.match(handle)]
            if bad_handles:
                raise BrandConfigError(f"{where} ({name}): not X handles: {bad_handles}")
            quoted = [keyword for keyword in lists["keywords"] if '"' in keyword]
            if quoted:  # it would end the rule's quoted phrase: `("Acme "Air"")`
                raise BrandConfigError(f"{where} ({name}): a keyword cannot hold a double quote: {quoted}")
            if not lists["handles"] and not lists["keywords"]:
                raise BrandConfigError(f"{where} ({name}): give at least one handle or keyword")
            zone = parse_zone(entry.get("timezone", DEFAULT_ZONE), where)
            brand = Brand(
                name=name,
                display_name=display_name(entry),
                handles=tuple(handle.lstrip("@") for handle in lists["handles"]),
                keywords=lists["keywords"],
                aliases=lists["aliases"],
                timezone=zone.key,
            )
            if len(brand.rule()) > MAX_RULE_CHARS:
                raise BrandConfigError(f"{where} ({name}): its stream rule is longer than {MAX_RULE_CHARS}")
            brands.append(brand)
        return cls(brands)

    @property
    def names(self) -> tuple[str, ...]:
        """Brand ids in configuration order."""
        return tuple(brand.name for brand in self.brands)

    def __getitem__(self, name: str) -> Brand:
        return self._by_name[name]

    def resolve(self, value: str) -> str:
        """A data file's brand/airline value as a brand id: a configured brand if it matches a name or alias,
        else the value itself, slugified (an unknown brand in a file is tracked as a brand of its own)."""
        return self._ids.resolve(value)

    def attribute(
        self,
        text: str,
        declared: str | Sequence[str] | None = None,
        rule_tags: Sequence[str] = (),
        author_username: str | None = None,
    ) -> tuple[str, ...]:
        """The brands of one tweet: the declared brand(s) win; else stream rule tags, handles and keywords."""
        if isinstance(declared, str):
            declared = split_brands(declared)
        if declared:
            return self._ids.resolve_all(declared)
        found = {tag for tag in rule_tags if tag in self._by_name}
        for name, pattern in self._patterns:
            if pattern.search(text):
                found.add(name)
        if author_username:
            author = author_username.lstrip("@").lower()
            found.update(b.name for b in self.brands if author in {h.lower() for h in b.handles})
        return tuple(name for name in self.names if name in found)

    def rules(self, suffix: str = "") -> dict[str, str]:
        """The filtered-stream rules, tag (brand id) -> rule value."""
        return {brand.name: brand.rule(suffix) for brand in self.brands}
