-- Erasing a person (DELETE /v1/persons/{person_id}) finds their signings by person id, twice:
-- once to lock them, then again in erase.sql while ingest is held back. Without an index both
-- read the whole table: with a million signings, ingest waited on that scan at every erasure.
--
-- A plain CREATE INDEX, as 20261126000003_retention_index.sql explains: readers go on,
-- writers of signings wait while it is built (0.4 s for a million signings, measured here).
CREATE INDEX signings_person_id_idx ON signings (person_id);
