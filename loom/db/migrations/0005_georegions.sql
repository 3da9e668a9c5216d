-- Saved georegions (home, work, custom places) that the georegion function watches,
-- managed through ingest's admin /regions routes. A region is a circle (centre and
-- radius in metres) or a GeoJSON Polygon geometry ({"type": "Polygon", "coordinates":
-- [[[lon, lat], ...], ...]}, outline first, then holes); it applies to one device, or to
-- every device when device_id is NULL.

CREATE TABLE georegions (
    region_id   text PRIMARY KEY CHECK (length(region_id) BETWEEN 1 AND 128),
    device_id   text REFERENCES devices (device_id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind        text NOT NULL DEFAULT 'custom' CHECK (kind IN ('home', 'work', 'custom')),
    latitude    double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude   double precision CHECK (longitude BETWEEN -180 AND 180),
    radius_m    double precision CHECK (radius_m > 0),
    polygon     jsonb CHECK (polygon IS NULL OR polygon->>'type' = 'Polygon'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT georegions_one_shape CHECK (
        (polygon IS NULL AND latitude IS NOT NULL AND longitude IS NOT NULL
         AND radius_m IS NOT NULL)
        OR (polygon IS NOT NULL AND latitude IS NULL AND longitude IS NULL AND radius_m IS NULL)
    )
);

CREATE INDEX georegions_device ON georegions (device_id);
