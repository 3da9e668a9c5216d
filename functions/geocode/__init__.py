"""``geocode``: reverse-geocoded addresses (city, region, country) of GPS fixes, offline from
GeoNames places by default, from a Nominatim-compatible server when one is configured."""
