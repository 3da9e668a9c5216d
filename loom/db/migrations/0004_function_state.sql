-- What ordered functions remember per device between events (loom.runtime.state): the
-- state after the last event, the state before it, and that event's id, so a redelivery
-- of the last event is recomputed from where it started.

CREATE TABLE loom_function_state (
    function    text NOT NULL,
    key         text NOT NULL,
    state       jsonb NOT NULL,
    previous    jsonb NOT NULL,
    last_event  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (function, key)
);
