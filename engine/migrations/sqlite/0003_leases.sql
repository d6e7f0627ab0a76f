-- Leases: a named hold that one holder has until it expires (unless renewed). Pollers hold
-- `poll:<tenant>:<source>` so that one process polls a source at a time; workers on a queue that
-- may deliver a job twice hold `import:<tenant>:<claim>` while they import the claimed file.
-- `expires_at_ms` is milliseconds since the Unix epoch (one machine's clock: SQLite is local).
CREATE TABLE leases (
    name          TEXT PRIMARY KEY NOT NULL,
    holder        TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
