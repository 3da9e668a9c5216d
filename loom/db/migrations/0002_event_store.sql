-- The event store: helpers that create one time-partitioned table per stored type
-- (the tables themselves are made by the generated migrations that follow).
--
-- Two storage paths behind one interface. With the TimescaleDB extension, a table
-- is a hypertable (chunks by time, compressed and dropped by TimescaleDB's own
-- policies, which `loom db maintain` keeps in line with the catalog). Without it,
-- a table is natively range-partitioned by time; `loom db maintain` creates
-- partitions ahead and drops those past retention, and the store creates any
-- partition a late or early event needs.

DO $$
BEGIN
    IF coalesce(current_setting('loom.storage_backend', true), '') IN ('', 'auto')
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    END IF;
END $$;

-- 'timescaledb' or 'partitioned': LOOM_STORE_BACKEND when set (the runner sets
-- loom.storage_backend), else 'timescaledb' where the extension is installed.
CREATE FUNCTION loom_storage_backend() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN coalesce(current_setting('loom.storage_backend', true), '') NOT IN ('', 'auto')
            THEN current_setting('loom.storage_backend')
        WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
            THEN 'timescaledb'
        ELSE 'partitioned'
    END
$$;

-- Every event table, how it was made, and so how it is maintained.
CREATE TABLE loom_event_tables (
    table_name         text PRIMARY KEY,
    event_type         text NOT NULL UNIQUE,
    backend            text NOT NULL CHECK (backend IN ('timescaledb', 'partitioned')),
    partition_interval interval NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION loom_create_event_table(
    tbl text, event_type text, chunk interval, columns text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    backend text := loom_storage_backend();
    body text := columns || ', PRIMARY KEY (time, source, id)';
BEGIN
    IF backend = 'timescaledb' THEN
        EXECUTE format('CREATE TABLE %I (%s)', tbl, body);
        PERFORM create_hypertable(tbl::regclass, 'time', chunk_time_interval => chunk);
    ELSIF backend = 'partitioned' THEN
        EXECUTE format('CREATE TABLE %I (%s) PARTITION BY RANGE (time)', tbl, body);
    ELSE
        RAISE EXCEPTION 'unknown storage backend %', backend;
    END IF;
    EXECUTE format('CREATE INDEX %I ON %I (device_id, time DESC)', tbl || '_device_time', tbl);
    INSERT INTO loom_event_tables (table_name, event_type, backend, partition_interval)
    VALUES (tbl, event_type, backend, chunk);
END $$;

-- TimescaleDB: compress a hypertable's chunks by device, newest first (called by
-- `loom db maintain` before it adds the compression policy).
CREATE FUNCTION loom_enable_compression(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'ALTER TABLE %s SET (timescaledb.compress, '
        'timescaledb.compress_segmentby = %L, timescaledb.compress_orderby = %L)',
        tbl, 'device_id', 'time DESC');
END $$;
