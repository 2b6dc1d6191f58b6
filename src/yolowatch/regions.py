"""Where a process runs, for the fleet map: a cloud region's name, or coordinates given outright.

`parse_region("eu-west-1")`, `parse_region("52.37,4.90")` and `parse_region("factory-3@52.37,4.90")` each give a
`Region` with a name and a point; anything else is a ValueError saying what is accepted. The table holds the main
AWS, Google Cloud and Azure regions with their city's approximate coordinates (a map pin, not a data centre's
address). Pure: no I/O, no yolowatch imports.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

MAX_NAME_LENGTH = 64


@dataclass(frozen=True)
class Region:
    name: str
    latitude: float
    longitude: float


# (name, latitude, longitude): the region's city, to two decimals.
_AWS = (
    ("us-east-1", 39.04, -77.49), ("us-east-2", 39.96, -83.00), ("us-west-1", 37.77, -122.42),
    ("us-west-2", 45.84, -119.70), ("ca-central-1", 45.50, -73.57), ("ca-west-1", 51.05, -114.07),
    ("mx-central-1", 20.59, -100.39), ("sa-east-1", -23.55, -46.63), ("eu-west-1", 53.35, -6.26),
    ("eu-west-2", 51.51, -0.13), ("eu-west-3", 48.86, 2.35), ("eu-central-1", 50.11, 8.68),
    ("eu-central-2", 47.37, 8.54), ("eu-north-1", 59.33, 18.07), ("eu-south-1", 45.46, 9.19),
    ("eu-south-2", 41.65, -0.88), ("il-central-1", 32.09, 34.78), ("me-south-1", 26.07, 50.55),
    ("me-central-1", 25.20, 55.27), ("af-south-1", -33.92, 18.42), ("ap-east-1", 22.32, 114.17),
    ("ap-south-1", 19.08, 72.88), ("ap-south-2", 17.39, 78.49), ("ap-southeast-1", 1.35, 103.82),
    ("ap-southeast-2", -33.87, 151.21), ("ap-southeast-3", -6.21, 106.85), ("ap-southeast-4", -37.81, 144.96),
    ("ap-northeast-1", 35.68, 139.69), ("ap-northeast-2", 37.57, 126.98), ("ap-northeast-3", 34.69, 135.50),
)  # fmt: skip
_GOOGLE_CLOUD = (
    ("us-central1", 41.26, -95.86), ("us-east1", 33.20, -80.01), ("us-east4", 39.04, -77.49),
    ("us-east5", 39.96, -83.00), ("us-south1", 32.78, -96.80), ("us-west1", 45.59, -121.18),
    ("us-west2", 34.05, -118.24), ("us-west3", 40.76, -111.89), ("us-west4", 36.17, -115.14),
    ("northamerica-northeast1", 45.50, -73.57), ("northamerica-northeast2", 43.65, -79.38),
    ("southamerica-east1", -23.55, -46.63), ("southamerica-west1", -33.45, -70.67),
    ("europe-west1", 50.45, 3.82), ("europe-west2", 51.51, -0.13), ("europe-west3", 50.11, 8.68),
    ("europe-west4", 53.44, 6.83), ("europe-west6", 47.37, 8.54), ("europe-west8", 45.46, 9.19),
    ("europe-west9", 48.86, 2.35), ("europe-north1", 60.57, 27.20), ("europe-central2", 52.23, 21.01),
    ("europe-southwest1", 40.42, -3.70), ("me-west1", 32.09, 34.78), ("me-central1", 25.29, 51.53),
    ("africa-south1", -26.20, 28.05), ("asia-east1", 24.07, 120.54), ("asia-east2", 22.32, 114.17),
    ("asia-northeast1", 35.68, 139.69), ("asia-northeast2", 34.69, 135.50), ("asia-northeast3", 37.57, 126.98),
    ("asia-south1", 19.08, 72.88), ("asia-south2", 28.61, 77.21), ("asia-southeast1", 1.35, 103.82),
    ("asia-southeast2", -6.21, 106.85), ("australia-southeast1", -33.87, 151.21),
    ("australia-southeast2", -37.81, 144.96),
)  # fmt: skip
_AZURE = (
    ("eastus", 37.37, -79.82), ("eastus2", 36.68, -78.39), ("centralus", 41.59, -93.62),
    ("northcentralus", 41.88, -87.63), ("southcentralus", 29.42, -98.49), ("westcentralus", 41.14, -104.82),
    ("westus", 37.78, -122.42), ("westus2", 47.23, -119.85), ("westus3", 33.45, -112.07),
    ("canadacentral", 43.65, -79.38), ("canadaeast", 46.82, -71.22), ("brazilsouth", -23.55, -46.63),
    ("northeurope", 53.35, -6.26), ("westeurope", 52.37, 4.90), ("uksouth", 51.51, -0.13),
    ("ukwest", 51.48, -3.18), ("francecentral", 48.86, 2.35), ("germanywestcentral", 50.11, 8.68),
    ("switzerlandnorth", 47.37, 8.54), ("norwayeast", 59.91, 10.75), ("swedencentral", 60.67, 17.14),
    ("italynorth", 45.46, 9.19), ("polandcentral", 52.23, 21.01), ("spaincentral", 40.42, -3.70),
    ("israelcentral", 32.09, 34.78), ("qatarcentral", 25.29, 51.53), ("uaenorth", 25.27, 55.31),
    ("southafricanorth", -26.20, 28.05), ("eastasia", 22.32, 114.17), ("southeastasia", 1.35, 103.82),
    ("japaneast", 35.68, 139.69), ("japanwest", 34.69, 135.50), ("koreacentral", 37.57, 126.98),
    ("centralindia", 18.52, 73.86), ("southindia", 13.08, 80.27), ("australiaeast", -33.87, 151.21),
    ("australiasoutheast", -37.81, 144.96),
)  # fmt: skip

CLOUD_REGIONS: Mapping[str, Region] = MappingProxyType(
    {name: Region(name, latitude, longitude) for name, latitude, longitude in (*_AWS, *_GOOGLE_CLOUD, *_AZURE)}
)

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_COORDINATES = re.compile(rf"\s*({_NUMBER})\s*,\s*({_NUMBER})\s*")
FORMS = "a cloud region name (eu-west-1, us-central1, westeurope), LAT,LON (52.37,4.90) or NAME@LAT,LON"


def parse_region(text: str) -> Region:
    """A cloud region by name (any case), bare `LAT,LON`, or `NAME@LAT,LON`; ValueError otherwise."""
    stripped = text.strip()
    name, at, place = stripped.rpartition("@")
    if at:
        return Region(_custom_name(name.strip(), stripped), *_coordinates(place, stripped))
    known = CLOUD_REGIONS.get(stripped.lower())
    if known is not None:
        return known
    if _COORDINATES.fullmatch(stripped):
        latitude, longitude = _coordinates(stripped, stripped)
        return Region(f"{latitude:.2f},{longitude:.2f}", latitude, longitude)
    raise ValueError(_unknown(stripped))


def _coordinates(text: str, given: str) -> tuple[float, float]:
    match = _COORDINATES.fullmatch(text)
    if match is None:
        raise ValueError(f"region {given!r}: {text.strip()!r} is not LAT,LON (degrees, e.g. 52.37,4.90)")
    latitude, longitude = float(match[1]), float(match[2])
    if not -90 <= latitude <= 90:
        raise ValueError(f"region {given!r}: latitude must be from -90 to 90; got {latitude:g}")
    if not -180 <= longitude <= 180:
        raise ValueError(f"region {given!r}: longitude must be from -180 to 180; got {longitude:g}")
    return latitude, longitude


def _custom_name(name: str, given: str) -> str:
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable() or "@" in name:
        raise ValueError(
            f"region {given!r}: the name before @ must be 1 to {MAX_NAME_LENGTH} printable characters "
            "(no @), as in factory-3@52.37,4.90"
        )
    return name


def _unknown(text: str) -> str:
    if not text:
        return f"region is empty: give {FORMS}"
    close = difflib.get_close_matches(text.lower(), CLOUD_REGIONS, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"unknown region {text!r}: {hint}Give {FORMS}, e.g. {text[:MAX_NAME_LENGTH]}@52.37,4.90"
