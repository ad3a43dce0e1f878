-- Identity data at rest, erasure and retention (CONTRACT.md).
--
-- Payloads and kept bodies are sealed by the service (AES-256-GCM, src/at_rest.rs) before
-- they reach PostgreSQL, so that no copy of the database, its WAL or its backups holds them
-- readable. Rows stored before this migration keep their plaintext column until
-- `idnow-attempts reencrypt` seals them; each row holds exactly one of the two.
--
-- Run time: instant whatever the size of the tables (new nullable columns, constraints added
-- NOT VALID); the two migrations after it validate the constraints and build the retention
-- index, each in a transaction of its own, without blocking readers.

ALTER TABLE attempts
    ALTER COLUMN payload DROP NOT NULL,
    -- The id of the key in PAYLOAD_ENCRYPTION_KEYS that sealed `sealed`.
    ADD COLUMN key_id text,
    ADD COLUMN sealed bytea,
    -- Kept in the row, not in the TOAST table: ciphertext does not compress, so a 3 KB
    -- payload would otherwise go out of line, and every listed attempt would cost a TOAST
    -- index probe and two chunk reads (a 5-row fetch of 3 KB values by index ran 7 to 35 %
    -- faster inline, pgbench).
    -- Values too large for a page still go out of line.
    ALTER COLUMN sealed SET STORAGE MAIN,
    ADD CONSTRAINT attempts_payload_sealed_or_plain CHECK (
        (sealed IS NULL) = (key_id IS NULL) AND (sealed IS NULL) <> (payload IS NULL)
    ) NOT VALID;

ALTER TABLE rejected_deliveries
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN key_id text,
    ADD COLUMN sealed bytea,
    -- identificationprocess.transactionnumber when the body has one: what erasure finds a
    -- person's kept deliveries by.
    ADD COLUMN transaction_number text,
    ADD CONSTRAINT rejected_deliveries_body_sealed_or_plain CHECK (
        (sealed IS NULL) = (key_id IS NULL) AND (sealed IS NULL) <> (body IS NULL)
    ) NOT VALID;

CREATE INDEX rejected_deliveries_transaction_number_idx
    ON rejected_deliveries (transaction_number) WHERE transaction_number IS NOT NULL;

-- Bodies kept before (a few: refused deliveries): their transaction number, where they are
-- JSON with a string one, as the service reads it.
DO $$
DECLARE
    kept record;
BEGIN
    FOR kept IN SELECT id, body FROM rejected_deliveries LOOP
        BEGIN
            UPDATE rejected_deliveries
            SET transaction_number = CASE
                WHEN json_typeof(convert_from(kept.body, 'UTF8')::json
                                 #> '{identificationprocess,transactionnumber}') = 'string'
                THEN convert_from(kept.body, 'UTF8')::json
                     #>> '{identificationprocess,transactionnumber}'
            END
            WHERE id = kept.id;
        EXCEPTION WHEN others THEN
            -- Not UTF-8, or not JSON: it names no identification.
            NULL;
        END;
    END LOOP;
END $$;

-- Every key id under which a row may be sealed. Each statement that seals rows registers its
-- key in the same transaction, and `reencrypt` removes a key once no row uses it, so that
-- readiness finds a key in use that is not configured by reading this small table instead of
-- the attempts.
CREATE TABLE payload_keys (
    key_id        text        PRIMARY KEY,
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- Identifications erased on request, remembered only by the SHA-256 of their transaction
-- number, so that a late webhook for one is acknowledged and not stored again.
CREATE TABLE erased_identifications (
    digest    bytea       PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT erased_identifications_digest_length CHECK (octet_length(digest) = 32)
);

-- Where retention's walk over a table stopped: every row up to here was expired when the
-- walk passed it and is deleted or claimed by a signing (for good: only erasure removes a
-- signing, and it removes the signing's attempts with it).
CREATE TABLE retention_marks (
    name        text        PRIMARY KEY,
    received_at timestamptz NOT NULL,
    seq         bigint      NOT NULL
);

INSERT INTO retention_marks (name, received_at, seq) VALUES ('attempts', '-infinity', 0);
