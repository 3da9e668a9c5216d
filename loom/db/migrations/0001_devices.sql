-- Device registry and access tokens for the ingest front door.

CREATE TABLE devices (
    device_id      text PRIMARY KEY CHECK (length(device_id) BETWEEN 1 AND 128),
    name           text NOT NULL,
    device_type    text NOT NULL DEFAULT 'other',
    platform       text,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    last_seen_at   timestamptz,
    events_total   bigint NOT NULL DEFAULT 0
);

-- Tokens are kept only as SHA-256 of the secret: they are 256-bit random values,
-- so a fast hash is enough (no password stretching needed).
CREATE TABLE access_tokens (
    token_hash     bytea PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('admin', 'device')),
    device_id      text REFERENCES devices (device_id),
    label          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    CHECK ((kind = 'device') = (device_id IS NOT NULL))
);

CREATE INDEX access_tokens_device ON access_tokens (device_id) WHERE revoked_at IS NULL;
