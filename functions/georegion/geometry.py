"""Shapes of saved regions and where a point lies against them, in metres on the WGS 84
sphere. Pure Python: a region is a circle or a polygon of a few hundred vertices, and
ray casting plus point-to-edge distances in a local projection are all it needs (no
shapely, no GEOS).

``measure`` answers the *signed boundary distance* (positive inside, negative outside):
a fix whose accuracy circle (radius ``a``) lies inside the region has ``s >= a``, one
whose accuracy circle lies wholly outside has ``-s > a``. Circles and polygons are
decided by the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

__all__ = [
    "EARTH_RADIUS_M",
    "Circle",
    "Polygon",
    "Shape",
    "distance_m",
    "parse_polygon",
]

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
MAX_RINGS = 20
MAX_POSITIONS = 5000  # over all rings of one polygon


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Circle:
    """A centre and a radius in metres."""

    latitude: float
    longitude: float
    radius_m: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.latitude, self.longitude

    def measure(self, lat: float, lon: float) -> tuple[float, float]:
        """(signed distance to the boundary, distance to the centre), in metres."""
        d = distance_m(self.latitude, self.longitude, lat, lon)
        return self.radius_m - d, d


@dataclass(frozen=True)
class Polygon:
    """GeoJSON polygon rings of (lon, lat), each closed; the first is the outline, the others
    holes (the even-odd rule: a point in a hole is outside)."""

    rings: tuple[tuple[tuple[float, float], ...], ...]
    bbox: tuple[float, float, float, float] = field(init=False, compare=False, repr=False)
    centre: tuple[float, float] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        points = [p for ring in self.rings for p in ring[:-1]]
        outline = self.rings[0][:-1]
        lons, lats = [p[0] for p in points], [p[1] for p in points]
        object.__setattr__(self, "bbox", (min(lons), min(lats), max(lons), max(lats)))
        # the mean of the outline's vertices: the "centre" that events report distances to
        object.__setattr__(self, "centre", (
            sum(p[1] for p in outline) / len(outline), sum(p[0] for p in outline) / len(outline)
        ))  # fmt: skip

    def to_geojson(self) -> dict[str, Any]:
        return {"type": "Polygon", "coordinates": [[list(p) for p in r] for r in self.rings]}

    def measure(self, lat: float, lon: float, near_m: float = math.inf) -> tuple[float, float]:
        """(signed distance to the boundary, distance to the centre), in metres.

        A point more than ``near_m`` outside the bounding box is answered from the box
        alone (a lower bound of how far outside it is): exact enough to decide, and cheap.
        """
        centre = distance_m(lat, lon, *self.centre)
        west, south, east, north = self.bbox
        k = EARTH_RADIUS_M * math.pi / 180
        dx = max(west - lon, 0.0, lon - east) * k * math.cos(math.radians(lat))
        dy = max(south - lat, 0.0, lat - north) * k
        if dx or dy:
            outside = math.hypot(dx, dy)
            if outside > near_m:
                return -outside, centre
        edge = self._edge_distance(lat, lon)
        return (edge if self._contains(lat, lon) else -edge), centre

    def _contains(self, lat: float, lon: float) -> bool:
        inside = False
        for ring in self.rings:
            for (x1, y1), (x2, y2) in pairwise(ring):
                if (y1 > lat) != (y2 > lat) and lon < (x2 - x1) * (lat - y1) / (y2 - y1) + x1:
                    inside = not inside
        return inside

    def _edge_distance(self, lat: float, lon: float) -> float:
        """Metres from (lat, lon) to the nearest edge, in an equirectangular projection
        centred on the point (exact enough near it, where the answer matters)."""
        kx = EARTH_RADIUS_M * math.pi / 180 * math.cos(math.radians(lat))
        ky = EARTH_RADIUS_M * math.pi / 180
        best = math.inf
        for ring in self.rings:
            points = [((x - lon) * kx, (y - lat) * ky) for x, y in ring]
            for (x1, y1), (x2, y2) in pairwise(points):
                ex, ey = x2 - x1, y2 - y1
                length = ex * ex + ey * ey
                t = 0.0 if length == 0 else max(0.0, min(1.0, -(x1 * ex + y1 * ey) / length))
                best = min(best, math.hypot(x1 + t * ex, y1 + t * ey))
        return best


Shape = Circle | Polygon


def parse_polygon(value: Any) -> Polygon:
    """A GeoJSON ``Polygon`` geometry (``{"type": "Polygon", "coordinates": [[[lon, lat],
    …]]}``) as a :class:`Polygon`; raises ``ValueError`` saying what is wrong.

    Rings may be given open (the first position is repeated to close them); a third number
    in a position (altitude) is ignored. A ring crossing the antimeridian is refused: split
    the region in two instead.
    """
    if not isinstance(value, dict) or value.get("type") != "Polygon":
        raise ValueError('a polygon is a GeoJSON geometry {"type": "Polygon", "coordinates": …}')
    rings = value.get("coordinates")
    if not isinstance(rings, list) or not 1 <= len(rings) <= MAX_RINGS:
        raise ValueError(f"a polygon has 1 to {MAX_RINGS} rings (outline first, then holes)")
    parsed = []
    for n, ring in enumerate(rings):
        parsed.append(_ring(ring, n))
    if sum(len(r) for r in parsed) > MAX_POSITIONS:
        raise ValueError(f"a polygon has at most {MAX_POSITIONS} positions")
    return Polygon(tuple(parsed))


def _ring(ring: Any, n: int) -> tuple[tuple[float, float], ...]:
    if not isinstance(ring, list):
        raise ValueError(f"ring {n} is not a list of [longitude, latitude] positions")
    points: list[tuple[float, float]] = []
    for position in ring:
        if (
            not isinstance(position, Sequence)
            or not 2 <= len(position) <= 3
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in position)
        ):
            raise ValueError(f"ring {n}: a position is [longitude, latitude]")
        lon, lat = float(position[0]), float(position[1])
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"ring {n}: [{lon}, {lat}] is not a [longitude, latitude] on Earth")
        points.append((lon, lat))
    if len(points) >= 2 and points[0] == points[-1]:
        points.pop()
    if len(set(points)) < 3:
        raise ValueError(f"ring {n} needs at least 3 distinct positions")
    points.append(points[0])
    if any(abs(b[0] - a[0]) > 180 for a, b in pairwise(points)):
        raise ValueError(f"ring {n} crosses the antimeridian; split the region in two")
    area = sum(a[0] * b[1] - b[0] * a[1] for a, b in pairwise(points))
    if abs(area) < 1e-14:
        raise ValueError(f"ring {n} encloses no area")
    return tuple(points)
