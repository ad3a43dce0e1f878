-- A signing is registered by the backend that created it, together with the IDnow
-- transaction number ("identification id") it uses. A signing belongs to one person and one
-- identification; an identification belongs to at most one signing.
CREATE TABLE signings (
    signing_id        text        PRIMARY KEY,
    person_id         text        NOT NULL,
    identification_id text        NOT NULL,
    registered_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT signings_identification_id_key UNIQUE (identification_id)
);

-- One row per IDnow result webhook (one identification attempt).
--
-- Attempts are keyed by the IDnow transaction number only: IDnow knows nothing of signings,
-- and a webhook may arrive before its signing is registered. A signing's history is the set
-- of attempts whose transaction number is the signing's identification id, so an attempt
-- joins its signing the moment the signing row exists, with no update and no race.
CREATE TABLE attempts (
    id                 uuid        PRIMARY KEY,
    -- Arrival order; the tie-breaker when two attempts share an identification time.
    seq                bigint      GENERATED ALWAYS AS IDENTITY,
    transaction_number text        NOT NULL,
    -- identificationprocess.id: IDnow's ident code, e.g. TST-KXQRM.
    ident_id           text,
    result             text        NOT NULL,
    reason             text,
    -- identificationprocess.identificationtime, when present and RFC 3339.
    identified_at      timestamptz,
    received_at        timestamptz NOT NULL DEFAULT now(),
    -- The history is ordered by identification time; an attempt without one sorts where it
    -- arrived.
    sort_at            timestamptz GENERATED ALWAYS AS (coalesce(identified_at, received_at)) STORED,
    -- Standard Webhooks `webhook-id`, when the delivery used that scheme.
    webhook_id         text,
    -- SHA-256 of (transactionnumber, identificationprocess.id, result, identificationtime as
    -- sent): the identity of an IDnow event across redeliveries, whatever the signing scheme.
    dedup_key          bytea       NOT NULL,
    -- The body exactly as received. `json` (not `jsonb`) keeps key order, so the history can
    -- return the payload as it was sent.
    payload            json        NOT NULL,
    CONSTRAINT attempts_webhook_id_key UNIQUE (webhook_id),
    CONSTRAINT attempts_dedup_key_key UNIQUE (dedup_key),
    CONSTRAINT attempts_dedup_key_length CHECK (octet_length(dedup_key) = 32)
);

-- Serves the history listing (filter by transaction number, ordered) and its count, without
-- touching any other signing's rows.
CREATE INDEX attempts_history_idx ON attempts (transaction_number, sort_at, seq);

-- Authentic deliveries that were refused (400/422), kept verbatim for operators so that
-- nothing IDnow sent is lost. The body is bytes: it may not even be UTF-8.
CREATE TABLE rejected_deliveries (
    id           uuid        PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    status       smallint    NOT NULL,
    error_code   text        NOT NULL,
    webhook_id   text,
    content_type text,
    body         bytea       NOT NULL
);

CREATE INDEX rejected_deliveries_received_at_idx ON rejected_deliveries (received_at);
