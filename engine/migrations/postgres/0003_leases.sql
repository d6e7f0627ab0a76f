-- Leases: a named hold that one holder has until it expires (unless renewed). Pollers hold
-- `poll:<tenant>:<source>` so that one process in the cluster polls a source at a time; workers
-- on a queue that may deliver a job twice hold `import:<tenant>:<claim>` while they import the
-- claimed file. Expiry is reckoned on the database's clock, so machines' clocks may differ.
CREATE TABLE leases (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);
