"""The brands file as the detection service and the app read it: each brand's zone and display name."""

from pathlib import Path

import pytest

from buzzwatch.settings import SettingsError
from buzzwatch.zones import brand_names, brand_zones


def test_a_misspelt_key_stops_the_readers_instead_of_leaving_the_brand_in_utc(tmp_path: Path) -> None:
    """The detection service's mails and the app's charts read `timezone`; a `time_zone` was ignored."""
    path = tmp_path / "brands.toml"
    path.write_text('[[brand]]\nname = "united"\nhandles = ["united"]\ntime_zone = "America/Chicago"\n')
    for read in (brand_zones, brand_names):
        with pytest.raises(
            SettingsError, match=r"brand #1 \(united\): unknown key 'time_zone' \(did you mean"
        ):
            read(path)
    path.write_text('[[brand]]\nname = "united"\nhandles = ["united"]\ntimezone = "America/Chicago"\n')
    assert str(brand_zones(path)["united"]) == "America/Chicago"
