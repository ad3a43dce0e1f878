-- Validates the constraints the migration before added NOT VALID: reads every row once, under
-- a SHARE UPDATE EXCLUSIVE lock, which blocks neither reads nor writes.
ALTER TABLE attempts VALIDATE CONSTRAINT attempts_payload_sealed_or_plain;
ALTER TABLE rejected_deliveries VALIDATE CONSTRAINT rejected_deliveries_body_sealed_or_plain;
