-- Where each scheduled fetcher (calendar, email, Hacker News …) stopped, per account
-- (loom.runtime.cursors): the source's own position (a sync token, a UID, an item id),
-- saved only after the events fetched up to it were acknowledged by Kafka, and the
-- failure count and time of the next attempt that its back-off keeps.

CREATE TABLE loom_fetcher_cursor (
    fetcher          text NOT NULL,
    account          text NOT NULL,
    cursor           jsonb NOT NULL DEFAULT '{}'::jsonb,
    emitted_total    bigint NOT NULL DEFAULT 0,
    failures         integer NOT NULL DEFAULT 0,
    last_error       text,
    last_success_at  timestamptz,
    next_attempt_at  timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fetcher, account)
);
