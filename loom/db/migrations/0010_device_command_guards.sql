-- Remote control: what a device's open command connections need to know at once, and
-- what an answer may weigh.

-- Every ingest replica LISTENs on this channel too: a device's token revoked (rotated,
-- or the device deleted) closes that device's open command connections wherever they
-- are, and drops the replica's cached checks of its tokens, whoever made the change.
CREATE FUNCTION loom_device_tokens_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('loom_device_tokens', NEW.device_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER access_tokens_revoked_notify AFTER UPDATE OF revoked_at ON access_tokens
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL AND NEW.device_id IS NOT NULL)
    EXECUTE FUNCTION loom_device_tokens_notify();

CREATE TRIGGER devices_deleted_notify AFTER UPDATE OF deleted_at ON devices
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION loom_device_tokens_notify();

-- The size of an item's data and answer as JSON text, so that a long-poll answer or a
-- page of the audit log stops at its byte budget without reading what it leaves out.
ALTER TABLE device_commands ADD COLUMN size_bytes bigint
    GENERATED ALWAYS AS (octet_length(data::text) + coalesce(octet_length(result::text), 0))
    STORED;
