"""Distances, containment and polygon parsing of saved regions."""

from __future__ import annotations

import pytest

from functions.georegion.geometry import Circle, distance_m, parse_polygon
from tests.functions.georegion.helpers import HOME, east_of, north_of, square


def test_distances_are_great_circle_metres() -> None:
    assert distance_m(52.5200, 13.4050, 48.8566, 2.3522) == pytest.approx(877_500, rel=0.005)
    assert distance_m(0, 179.999, 0, -179.999) == pytest.approx(222.4, abs=0.5)  # antimeridian
    assert distance_m(*HOME, *HOME) == 0


def test_a_circle_measures_its_boundary_and_centre() -> None:
    circle = Circle(*HOME, 100)
    assert circle.measure(*north_of(HOME, 30)) == pytest.approx((70, 30), abs=0.01)
    assert circle.measure(*east_of(HOME, 250)) == pytest.approx((-150, 250), abs=0.05)


def test_a_polygon_measures_the_nearest_edge_inside_and_out() -> None:
    office = square("office", HOME, half_m=200).shape
    inside, centre = office.measure(*north_of(HOME, 150))
    assert (inside, centre) == pytest.approx((50, 150), abs=0.5)
    outside, _ = office.measure(*east_of(HOME, 260))
    assert outside == pytest.approx(-60, abs=0.5)


def test_far_from_a_polygon_the_bounding_box_answers() -> None:
    office = square("office", HOME, half_m=200).shape
    far = north_of(HOME, 5000)
    quick, _ = office.measure(*far, near_m=100)
    exact, _ = office.measure(*far)
    assert quick == pytest.approx(exact, abs=1)  # straight north: the box edge is the edge
    assert quick < -100


def test_open_rings_are_closed_and_altitudes_ignored() -> None:
    polygon = parse_polygon({"type": "Polygon", "coordinates": [[[0, 0, 5], [1, 0], [1, 1]]]})
    assert polygon.rings == (((0, 0), (1, 0), (1, 1), (0, 0)),)
    assert polygon.to_geojson()["coordinates"] == [[[0, 0], [1, 0], [1, 1], [0, 0]]]


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ({"type": "Point", "coordinates": [0, 0]}, "GeoJSON"),
        ({"type": "Polygon", "coordinates": []}, "1 to 20 rings"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}, "3 distinct"),
        ({"type": "Polygon", "coordinates": [[[0, 0], ["a", 1], [1, 1]]]}, "[longitude, latitude]"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [0, 91], [1, 1]]]}, "on Earth"),
        ({"type": "Polygon", "coordinates": [[[179, 0], [-179, 0], [-179, 1]]]}, "antimeridian"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2]]]}, "no area"),
    ],
)
def test_bad_polygons_say_what_is_wrong(value: object, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase.replace("[", r"\[").replace("]", r"\]")):
        parse_polygon(value)
