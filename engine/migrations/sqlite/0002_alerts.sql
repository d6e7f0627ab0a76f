-- Alerts: one row per event and channel it was routed to (or the `log` fallback), with what
-- became of it: `queued` (waiting for its delivery job), `sent`, `suppressed` (rate limit or an
-- inactive channel), `duplicate`, `held` (quiet hours; delivered in the digest), `failed` (with
-- the reason). The SLA monitor also reads it as its ledger: a window whose `sla_violation` row
-- exists was reported.

CREATE TABLE alerts (
    _id            TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    revision_id    TEXT NOT NULL,
    is_deleted     INTEGER NOT NULL DEFAULT 0,
    deleted_at     TEXT,
    doc            TEXT NOT NULL CHECK (json_valid(doc) AND json_type(doc) = 'object'),
    status      TEXT GENERATED ALWAYS AS (json_extract(doc, '$.status')) VIRTUAL,
    channel_id  TEXT GENERATED ALWAYS AS (json_extract(doc, '$.channel_id')) VIRTUAL,
    event_type  TEXT GENERATED ALWAYS AS (json_extract(doc, '$.event_type')) VIRTUAL,
    severity    TEXT GENERATED ALWAYS AS (json_extract(doc, '$.severity')) VIRTUAL,
    dedup_key   TEXT GENERATED ALWAYS AS (json_extract(doc, '$.dedup_key')) VIRTUAL
);
CREATE INDEX alerts_tenant_created ON alerts (tenant_id, is_deleted, created_at);
CREATE INDEX alerts_tenant_status ON alerts (tenant_id, status);
CREATE INDEX alerts_tenant_dedup_key ON alerts (tenant_id, dedup_key, event_type);
