-- Alerts (Collection::Alerts): one row per alert raised, with the same base columns and JSON
-- `doc` as every collection; status, channel, event type, severity and dedup key are the indexed
-- fields (mirrors engine/migrations/sqlite/0002_alerts.sql).

CREATE TABLE alerts (
    _id            text COLLATE "C" PRIMARY KEY,
    tenant_id      text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    revision_id    text NOT NULL,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    doc            json NOT NULL CHECK (json_typeof(doc) = 'object'),
    status          text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'status') STORED,
    channel_id      text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'channel_id') STORED,
    event_type      text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'event_type') STORED,
    severity        text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'severity') STORED,
    dedup_key       text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'dedup_key') STORED
);
CREATE INDEX alerts_tenant_created ON alerts (tenant_id, is_deleted, created_at);
CREATE INDEX alerts_tenant_status ON alerts (tenant_id, status);
CREATE INDEX alerts_tenant_dedup ON alerts (tenant_id, dedup_key, event_type);
