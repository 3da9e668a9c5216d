"""Online reverse geocoding against a Nominatim-compatible server (``/reverse?format=jsonv2``).

Never raises: a timeout, a refused connection, an error status, an answer without a
city, region and country, or a request over the rate limit all answer ``None``, and the
function uses the offline answer instead.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx

from functions.geocode.offline import Address
from functions.geocode.settings import GeocodeSettings
from functions.georegion.geometry import distance_m
from loom.logging import get_logger

__all__ = ["Nominatim"]

log = get_logger("loom.function.geocode")

# Nominatim's address parts, most specific first, for the fields an address event has.
CITY = ("city", "town", "village", "hamlet", "municipality", "suburb", "city_district")
ADMIN1 = ("state", "region", "province", "state_district", "county", "city")
ADMIN2 = ("county", "state_district", "district", "city_district", "borough")


class Nominatim:
    """An HTTP client of one Nominatim-compatible server, rate-limited, with a timeout."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        user_agent: str,
        language: str | None = None,
        rate_per_second: float = 1.0,
    ) -> None:
        self.url = url if url.endswith("/reverse") else f"{url}/reverse"
        self._client = httpx.AsyncClient(timeout=timeout, headers={"User-Agent": user_agent})
        self._language = language
        self._spacing = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
        self._next = 0.0

    @classmethod
    def from_settings(cls, config: GeocodeSettings) -> Nominatim | None:
        """The client LOOM_GEOCODE_URL and its settings name; None when it is unset."""
        if not config.geocode_url:
            return None
        return cls(config.geocode_url, timeout=config.geocode_timeout_seconds,
                   user_agent=config.geocode_user_agent, language=config.geocode_language,
                   rate_per_second=config.geocode_online_rate_per_second)  # fmt: skip

    async def aclose(self) -> None:
        await self._client.aclose()

    async def reverse(self, lat: float, lon: float) -> Address | None:
        now = time.monotonic()
        if now < self._next:
            log.debug("geocode.online_rate_limited")
            return None
        self._next = now + self._spacing
        params: dict[str, Any] = {"format": "jsonv2", "lat": f"{lat:.7f}", "lon": f"{lon:.7f}",
                                  "addressdetails": 1, "zoom": 18}  # fmt: skip
        if self._language:
            params["accept-language"] = self._language
        try:
            answer = await self._client.get(self.url, params=params)
            answer.raise_for_status()
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("geocode.online_failed", url=self.url, error=f"{type(exc).__name__}: {exc}")
            return None
        address = _address(body, lat, lon)
        if address is None:
            log.info("geocode.online_no_address", url=self.url, answer=str(body)[:200])
        return address


def _first(parts: dict[str, Any], keys: tuple[str, ...], limit: int = 200) -> str | None:
    for key in keys:
        value = parts.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:limit]
    return None


def _address(body: Any, lat: float, lon: float) -> Address | None:
    """A jsonv2 answer as an Address, or None if it lacks a city, region or country."""
    if not isinstance(body, dict) or not isinstance(body.get("address"), dict):
        return None  # e.g. {"error": "Unable to geocode"} at sea
    parts = body["address"]
    city, admin1 = _first(parts, CITY), _first(parts, ADMIN1)
    cc = parts.get("country_code")
    if city is None or admin1 is None or not isinstance(cc, str):
        return None
    cc = cc.upper()
    if len(cc) != 2 or not cc.isascii() or not cc.isalpha():
        return None
    admin2 = _first(parts, ADMIN2)
    display = body.get("display_name")
    display = display.strip()[:1000] if isinstance(display, str) else None
    try:
        km: float | None = distance_m(lat, lon, float(body["lat"]), float(body["lon"])) / 1000
    except (KeyError, TypeError, ValueError):
        km = None
    return Address(
        city=city,
        admin1=admin1,
        admin2=admin2 if admin2 not in (None, city, admin1) else None,
        country_code=cc,
        provider="nominatim",
        display_name=display or None,
        distance_km=None if km is None or math.isnan(km) else round(km, 3),
    )
