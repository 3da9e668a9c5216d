-- Remote control: one queue per device of what it is to receive (commands issued through
-- ingest's admin API, items of other devices' sync broadcasts), which is also the audit
-- log: who issued what and when, when it was delivered and acknowledged, and what the
-- device answered. A device receives its queue in `sequence` order, one item at a time,
-- over a WebSocket or by long-polling; an item older than its type's catalog retention
-- (`expires_at`) is marked expired instead of delivered.

-- The dangerous command types (catalog `dangerous: true`) the admin has enabled for a device.
ALTER TABLE devices ADD COLUMN allowed_commands text[] NOT NULL DEFAULT '{}';

-- The last sequence number given to each device's queue. Taking the next one locks the
-- device's row until the command is committed, so one device's commands become visible
-- in the order of their numbers (never a smaller number after a larger one).
CREATE TABLE device_command_sequences (
    device_id      text PRIMARY KEY REFERENCES devices (device_id),
    last_sequence  bigint NOT NULL CHECK (last_sequence > 0)
);

CREATE TABLE device_commands (
    command_id         text PRIMARY KEY CHECK (length(command_id) BETWEEN 1 AND 128),
    device_id          text NOT NULL REFERENCES devices (device_id),
    sequence           bigint NOT NULL CHECK (sequence > 0),
    type               text NOT NULL,
    source             text NOT NULL,
    data               jsonb NOT NULL,
    issued_by          text NOT NULL,
    issued_at          timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    delivered_at       timestamptz,
    delivery_attempts  integer NOT NULL DEFAULT 0,
    acked_at           timestamptz,
    status             text NOT NULL DEFAULT 'queued' CHECK (status IN (
                           'queued', 'delivered', 'acked', 'succeeded', 'failed', 'expired')),
    result             jsonb,
    responded_at       timestamptz,
    UNIQUE (device_id, sequence)
);

-- What each device still waits for, in order.
CREATE INDEX device_commands_waiting ON device_commands (device_id, sequence)
    WHERE status IN ('queued', 'delivered');

-- Every ingest replica LISTENs on this channel: a new item wakes the device's connection
-- wherever it is, whoever inserted the row.
CREATE FUNCTION loom_device_commands_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('loom_device_commands', NEW.device_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER device_commands_notify AFTER INSERT ON device_commands
    FOR EACH ROW EXECUTE FUNCTION loom_device_commands_notify();
