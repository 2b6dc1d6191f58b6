"""Regions for the fleet map: cloud region names, bare coordinates and named coordinates, and what is refused."""

from __future__ import annotations

import pytest

from yolowatch.regions import CLOUD_REGIONS, Region, parse_region


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("eu-west-1", Region("eu-west-1", 53.35, -6.26)),
        ("US-EAST-1", Region("us-east-1", 39.04, -77.49)),
        ("  ap-southeast-1 ", Region("ap-southeast-1", 1.35, 103.82)),
        ("sa-east-1", Region("sa-east-1", -23.55, -46.63)),
        ("us-central1", Region("us-central1", 41.26, -95.86)),
        ("Europe-West1", Region("europe-west1", 50.45, 3.82)),
        ("asia-east1", Region("asia-east1", 24.07, 120.54)),
        ("westeurope", Region("westeurope", 52.37, 4.90)),
        ("EastUS", Region("eastus", 37.37, -79.82)),
        ("southeastasia", Region("southeastasia", 1.35, 103.82)),
    ],
)
def test_cloud_region_names_in_any_case(text: str, expected: Region) -> None:
    """A known AWS, Google Cloud or Azure region, in any case and with spaces around, gives its canonical name and
    its city's coordinates."""
    assert parse_region(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("52.37,4.90", Region("52.37,4.90", 52.37, 4.90)),
        (" 52.3676 , 4.9041 ", Region("52.37,4.90", 52.3676, 4.9041)),
        ("-33.9,151", Region("-33.90,151.00", -33.9, 151.0)),
        ("90,-180", Region("90.00,-180.00", 90.0, -180.0)),
        ("+0,.5", Region("0.00,0.50", 0.0, 0.5)),
        ("factory-3@52.37,4.90", Region("factory-3", 52.37, 4.90)),
        ("Rotterdam port @ 51.95, 4.14", Region("Rotterdam port", 51.95, 4.14)),
        ("eu-west-1@1,2", Region("eu-west-1", 1.0, 2.0)),  # given coordinates win over the table's
    ],
)
def test_coordinates_bare_and_named(text: str, expected: Region) -> None:
    """LAT,LON is named after its coordinates (two decimals, full precision kept); NAME@LAT,LON keeps its name."""
    assert parse_region(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("eu-wst-1", "did you mean eu-west-1"),
        ("us-central-1", "did you mean us-central1"),
        ("west-europe", "did you mean westeurope"),
        ("mars-north-1", "unknown region 'mars-north-1'"),
        ("mars-north-1", "mars-north-1@52.37,4.90"),
        ("", "region is empty"),
        ("91,0", "latitude must be from -90 to 90; got 91"),
        ("-90.5,0", "latitude must be from -90 to 90; got -90.5"),
        ("0,180.01", "longitude must be from -180 to 180; got 180.01"),
        ("site@0,-200", "longitude must be from -180 to 180; got -200"),
        ("52.37;4.90", "unknown region"),
        ("nan,nan", "unknown region"),
        ("inf@1,2e5", "is not LAT,LON"),
        ("@52.37,4.90", "the name before @"),
        ("a@b@1,2", "the name before @"),
        ("tab\there@1,2", "the name before @"),
        ("x" * 65 + "@1,2", "the name before @"),
        ("eu-west-1@", "is not LAT,LON"),
    ],
)
def test_anything_else_is_refused_with_what_is_accepted(text: str, message: str) -> None:
    """An unknown name suggests the closest known ones and the NAME@LAT,LON form; coordinates out of range or
    malformed, and unusable names, are refused saying what was wrong."""
    with pytest.raises(ValueError) as refused:
        parse_region(text)
    assert message in str(refused.value)
    if "unknown region" in message or "did you mean" in message:
        assert "NAME@LAT,LON" in str(refused.value)


def test_the_table_is_read_only_and_in_range() -> None:
    """The table cannot be changed at run time, and every entry is a lowercase name at a point on the globe."""
    assert 90 <= len(CLOUD_REGIONS) <= 110
    with pytest.raises(TypeError):
        CLOUD_REGIONS["moon-1"] = Region("moon-1", 0, 0)  # type: ignore[index]
    for name, region in CLOUD_REGIONS.items():
        assert name == region.name == name.lower().strip()
        assert -90 <= region.latitude <= 90 and -180 <= region.longitude <= 180
