-- The engine's state store on SQLite.
--
-- Every resource table has the platform's base columns (`_id` as 24 hex characters, `tenant_id`,
-- `created_at`, `updated_at`, `revision_id` renewed on every write and served as the ETag,
-- `is_deleted`, `deleted_at`) and the resource's own fields as one JSON object in `doc`. The
-- fields that lists filter and sort on are generated columns over `doc`, so they can never
-- disagree with the document, and are indexed. Timestamps are RFC 3339 UTC text with
-- microseconds, which sorts chronologically.

CREATE TABLE templates (
    _id            TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    revision_id    TEXT NOT NULL,
    is_deleted     INTEGER NOT NULL DEFAULT 0,
    deleted_at     TEXT,
    doc            TEXT NOT NULL CHECK (json_valid(doc) AND json_type(doc) = 'object'),
    name            TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.name')) VIRTUAL,
    external_id     TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.external_id')) VIRTUAL,
    source_id       TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.source_id')) VIRTUAL,
    is_active       INTEGER GENERATED ALWAYS AS (coalesce(json_extract(doc, '$.is_active'), 1)) VIRTUAL,
    priority        INTEGER GENERATED ALWAYS AS (coalesce(json_extract(doc, '$.priority'), 0)) VIRTUAL,
    file_type       TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.file_type')) VIRTUAL,
    target_resource TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.target_resource')) VIRTUAL
);
CREATE INDEX templates_tenant_created ON templates (tenant_id, is_deleted, created_at);
CREATE INDEX templates_tenant_source ON templates (tenant_id, source_id, is_active);
CREATE INDEX templates_tenant_name ON templates (tenant_id, name);

CREATE TABLE sources (
    _id            TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    revision_id    TEXT NOT NULL,
    is_deleted     INTEGER NOT NULL DEFAULT 0,
    deleted_at     TEXT,
    doc            TEXT NOT NULL CHECK (json_valid(doc) AND json_type(doc) = 'object'),
    name        TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.name')) VIRTUAL,
    external_id TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.external_id')) VIRTUAL,
    source_type TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.source_type')) VIRTUAL,
    is_active   INTEGER GENERATED ALWAYS AS (coalesce(json_extract(doc, '$.is_active'), 1)) VIRTUAL
);
CREATE INDEX sources_tenant_created ON sources (tenant_id, is_deleted, created_at);
CREATE INDEX sources_tenant_name ON sources (tenant_id, name);

CREATE TABLE import_runs (
    _id            TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    revision_id    TEXT NOT NULL,
    is_deleted     INTEGER NOT NULL DEFAULT 0,
    deleted_at     TEXT,
    doc            TEXT NOT NULL CHECK (json_valid(doc) AND json_type(doc) = 'object'),
    status      TEXT GENERATED ALWAYS AS (json_extract(doc, '$.status')) VIRTUAL,
    source_id   TEXT GENERATED ALWAYS AS (json_extract(doc, '$.source_id')) VIRTUAL,
    template_id TEXT GENERATED ALWAYS AS (json_extract(doc, '$.template_id')) VIRTUAL,
    claim_id    TEXT GENERATED ALWAYS AS (json_extract(doc, '$.claim_id')) VIRTUAL
);
CREATE INDEX import_runs_tenant_created ON import_runs (tenant_id, is_deleted, created_at);
CREATE INDEX import_runs_tenant_status ON import_runs (tenant_id, status);
CREATE INDEX import_runs_tenant_template ON import_runs (tenant_id, template_id);

-- One row per distinct file version seen on a source. The unique index is what makes a file
-- importable once: racing claimers insert, exactly one insert wins. NULL-free key columns
-- (empty text for "no mtime"/"no version") because NULLs are distinct in unique indexes.
CREATE TABLE file_claims (
    _id            TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    revision_id    TEXT NOT NULL,
    is_deleted     INTEGER NOT NULL DEFAULT 0,
    deleted_at     TEXT,
    source_id      TEXT NOT NULL,
    path           TEXT NOT NULL,
    size           INTEGER NOT NULL,
    modified       TEXT NOT NULL,
    version        TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('claimed', 'importing', 'done', 'failed')),
    run_id         TEXT REFERENCES import_runs (_id)
);
CREATE UNIQUE INDEX file_claims_identity
    ON file_claims (source_id, path, size, modified, version, content_sha256);
CREATE INDEX file_claims_tenant_source ON file_claims (tenant_id, source_id, path);

CREATE TABLE rejected_records (
    _id            TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    revision_id    TEXT NOT NULL,
    is_deleted     INTEGER NOT NULL DEFAULT 0,
    deleted_at     TEXT,
    doc            TEXT NOT NULL CHECK (json_valid(doc) AND json_type(doc) = 'object'),
    import_run_id TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.import_run_id')) VIRTUAL,
    template_id   TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.template_id')) VIRTUAL,
    row_number    INTEGER GENERATED ALWAYS AS (json_extract(doc, '$.row_number')) VIRTUAL,
    status        TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.status')) VIRTUAL
);
-- A row of a run is rejected at most once: re-inserting after a resumed run is a no-op.
CREATE UNIQUE INDEX rejected_records_run_row ON rejected_records (import_run_id, row_number);
CREATE INDEX rejected_records_tenant_created ON rejected_records (tenant_id, is_deleted, created_at);
CREATE INDEX rejected_records_tenant_template ON rejected_records (tenant_id, template_id, status);
CREATE INDEX rejected_records_tenant_status ON rejected_records (tenant_id, status);

CREATE TABLE rejected_record_history (
    _id                TEXT PRIMARY KEY NOT NULL,
    tenant_id          TEXT NOT NULL,
    rejected_record_id TEXT NOT NULL REFERENCES rejected_records (_id),
    from_status        TEXT,
    to_status          TEXT NOT NULL,
    revision_id        TEXT NOT NULL,
    changed_at         TEXT NOT NULL,
    note               TEXT
);
CREATE INDEX rejected_record_history_record
    ON rejected_record_history (rejected_record_id, changed_at);

CREATE TABLE row_idempotency_keys (
    template_id   TEXT NOT NULL,
    key           TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    import_run_id TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (template_id, key)
) WITHOUT ROWID;

CREATE TABLE alert_channels (
    _id            TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    revision_id    TEXT NOT NULL,
    is_deleted     INTEGER NOT NULL DEFAULT 0,
    deleted_at     TEXT,
    doc            TEXT NOT NULL CHECK (json_valid(doc) AND json_type(doc) = 'object'),
    name        TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.name')) VIRTUAL,
    external_id TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.external_id')) VIRTUAL,
    type        TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.type')) VIRTUAL,
    is_active   INTEGER GENERATED ALWAYS AS (coalesce(json_extract(doc, '$.is_active'), 1)) VIRTUAL
);
CREATE INDEX alert_channels_tenant_created ON alert_channels (tenant_id, is_deleted, created_at);
CREATE INDEX alert_channels_tenant_name ON alert_channels (tenant_id, name);

CREATE TABLE alert_routing_rules (
    _id            TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    revision_id    TEXT NOT NULL,
    is_deleted     INTEGER NOT NULL DEFAULT 0,
    deleted_at     TEXT,
    doc            TEXT NOT NULL CHECK (json_valid(doc) AND json_type(doc) = 'object'),
    name        TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.name')) VIRTUAL,
    external_id TEXT    GENERATED ALWAYS AS (json_extract(doc, '$.external_id')) VIRTUAL,
    priority    INTEGER GENERATED ALWAYS AS (coalesce(json_extract(doc, '$.priority'), 0)) VIRTUAL,
    is_active   INTEGER GENERATED ALWAYS AS (coalesce(json_extract(doc, '$.is_active'), 1)) VIRTUAL
);
CREATE INDEX alert_routing_rules_tenant_created ON alert_routing_rules (tenant_id, is_deleted, created_at);
CREATE INDEX alert_routing_rules_tenant_priority ON alert_routing_rules (tenant_id, is_active, priority);
