-- A retention purge takes a vault row's fingerprint with its ciphertext: a keyed hash of a low-entropy value
-- (a date of birth, a card's last digits) can be brute-forced by whoever holds a backup and the key, and it
-- links the sessions that used the same value. The purged row keeps its placeholder, type and dates.
ALTER TABLE pii_vault ALTER COLUMN fingerprint DROP NOT NULL;
