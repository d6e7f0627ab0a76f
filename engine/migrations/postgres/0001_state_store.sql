-- The engine's state store on PostgreSQL: the same tables, columns and indexes as on SQLite
-- (engine/migrations/sqlite), in PostgreSQL's types.
--
-- Every resource table has the platform's base columns (`_id` as 24 hex characters, `tenant_id`,
-- `created_at`, `updated_at`, `revision_id` renewed on every write and served as the ETag,
-- `is_deleted`, `deleted_at`) and the resource's own fields as one JSON object in `doc`. The
-- fields that lists filter and sort on are stored generated columns over `doc`, so they can never
-- disagree with the document, and are indexed.
--
-- `doc` is `json`, not `jsonb`: `jsonb` re-orders the keys of every object, and the documents are
-- served back as written (serde_json keeps key order: a rejected record's `original_data` in the
-- file's column order, a template's `default_values`). Nothing queries inside `doc` except the
-- generated columns; switching to `jsonb` later is one `ALTER COLUMN ... USING doc::jsonb`.
--
-- Timestamps are `timestamptz` (microseconds, like the RFC 3339 text on SQLite). Text columns that
-- are sorted or compared use the "C" collation: byte order, as SQLite's BINARY, whatever the
-- database's locale.

-- A JSON field as a boolean: missing or null is `dflt`, a number is true unless 0, anything
-- else is NULL. Never fails, so no document is refused for an odd value.
CREATE FUNCTION intake_doc_bool(doc json, field text, dflt boolean) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT CASE coalesce(json_typeof(doc -> field), 'null')
            WHEN 'null' THEN dflt
            WHEN 'boolean' THEN (doc ->> field)::boolean
            WHEN 'number' THEN (doc ->> field)::numeric <> 0
        END
    $$;

-- A JSON field as a number: missing or null is `dflt`, a non-number is NULL.
CREATE FUNCTION intake_doc_number(doc json, field text, dflt numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT CASE coalesce(json_typeof(doc -> field), 'null')
            WHEN 'null' THEN dflt
            WHEN 'number' THEN (doc ->> field)::numeric
        END
    $$;

CREATE TABLE templates (
    _id            text COLLATE "C" PRIMARY KEY,
    tenant_id      text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    revision_id    text NOT NULL,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    doc            json NOT NULL CHECK (json_typeof(doc) = 'object'),
    name            text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'name') STORED,
    external_id     text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'external_id') STORED,
    source_id       text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'source_id') STORED,
    is_active       boolean GENERATED ALWAYS AS (intake_doc_bool(doc, 'is_active', true)) STORED,
    priority        numeric GENERATED ALWAYS AS (intake_doc_number(doc, 'priority', 0)) STORED,
    file_type       text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'file_type') STORED,
    target_resource text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'target_resource') STORED
);
CREATE INDEX templates_tenant_created ON templates (tenant_id, is_deleted, created_at);
CREATE INDEX templates_tenant_source ON templates (tenant_id, source_id, is_active);
CREATE INDEX templates_tenant_name ON templates (tenant_id, name);

CREATE TABLE sources (
    _id            text COLLATE "C" PRIMARY KEY,
    tenant_id      text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    revision_id    text NOT NULL,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    doc            json NOT NULL CHECK (json_typeof(doc) = 'object'),
    name            text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'name') STORED,
    external_id     text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'external_id') STORED,
    source_type     text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'source_type') STORED,
    is_active       boolean GENERATED ALWAYS AS (intake_doc_bool(doc, 'is_active', true)) STORED
);
CREATE INDEX sources_tenant_created ON sources (tenant_id, is_deleted, created_at);
CREATE INDEX sources_tenant_name ON sources (tenant_id, name);

CREATE TABLE import_runs (
    _id            text COLLATE "C" PRIMARY KEY,
    tenant_id      text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    revision_id    text NOT NULL,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    doc            json NOT NULL CHECK (json_typeof(doc) = 'object'),
    status          text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'status') STORED,
    source_id       text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'source_id') STORED,
    template_id     text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'template_id') STORED,
    claim_id        text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'claim_id') STORED
);
CREATE INDEX import_runs_tenant_created ON import_runs (tenant_id, is_deleted, created_at);
CREATE INDEX import_runs_tenant_status ON import_runs (tenant_id, status);
CREATE INDEX import_runs_tenant_template ON import_runs (tenant_id, template_id);

-- One row per distinct file version seen on a source. The unique index is what makes a file
-- importable once: racing claimers insert, exactly one insert wins. "No mtime" and "no version"
-- are NULL, coalesced in the index because NULLs are distinct in unique indexes.
CREATE TABLE file_claims (
    _id            text COLLATE "C" PRIMARY KEY,
    tenant_id      text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    revision_id    text NOT NULL,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    source_id      text NOT NULL,
    path           text NOT NULL,
    size           bigint NOT NULL,
    modified       timestamptz,
    version        text,
    content_sha256 text NOT NULL,
    state          text NOT NULL CHECK (state IN ('claimed', 'importing', 'done', 'failed')),
    run_id         text REFERENCES import_runs (_id)
);
CREATE UNIQUE INDEX file_claims_identity ON file_claims
    (source_id, path, size, coalesce(modified, '-infinity'), coalesce(version, ''), content_sha256);
CREATE INDEX file_claims_tenant_source ON file_claims (tenant_id, source_id, path);

CREATE TABLE rejected_records (
    _id            text COLLATE "C" PRIMARY KEY,
    tenant_id      text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    revision_id    text NOT NULL,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    doc            json NOT NULL CHECK (json_typeof(doc) = 'object'),
    import_run_id   text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'import_run_id') STORED,
    template_id     text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'template_id') STORED,
    row_number      numeric GENERATED ALWAYS AS (intake_doc_number(doc, 'row_number', NULL)) STORED,
    status          text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'status') STORED
);
-- A row of a run is rejected at most once: re-inserting after a resumed run is a no-op.
CREATE UNIQUE INDEX rejected_records_run_row ON rejected_records (import_run_id, row_number);
CREATE INDEX rejected_records_tenant_created ON rejected_records (tenant_id, is_deleted, created_at);
CREATE INDEX rejected_records_tenant_template ON rejected_records (tenant_id, template_id, status);
CREATE INDEX rejected_records_tenant_status ON rejected_records (tenant_id, status);

-- `seq` orders changes made within the same microsecond (SQLite's rowid).
CREATE TABLE rejected_record_history (
    _id                text COLLATE "C" PRIMARY KEY,
    seq                bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id          text COLLATE "C" NOT NULL,
    rejected_record_id text COLLATE "C" NOT NULL REFERENCES rejected_records (_id),
    from_status        text,
    to_status          text NOT NULL,
    revision_id        text NOT NULL,
    changed_at         timestamptz NOT NULL,
    note               text
);
CREATE INDEX rejected_record_history_record
    ON rejected_record_history (rejected_record_id, changed_at, seq);

CREATE TABLE row_idempotency_keys (
    template_id   text COLLATE "C" NOT NULL,
    key           text COLLATE "C" NOT NULL,
    tenant_id     text COLLATE "C" NOT NULL,
    import_run_id text,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (template_id, key)
);

CREATE TABLE alert_channels (
    _id            text COLLATE "C" PRIMARY KEY,
    tenant_id      text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    revision_id    text NOT NULL,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    doc            json NOT NULL CHECK (json_typeof(doc) = 'object'),
    name            text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'name') STORED,
    external_id     text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'external_id') STORED,
    type            text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'type') STORED,
    is_active       boolean GENERATED ALWAYS AS (intake_doc_bool(doc, 'is_active', true)) STORED
);
CREATE INDEX alert_channels_tenant_created ON alert_channels (tenant_id, is_deleted, created_at);
CREATE INDEX alert_channels_tenant_name ON alert_channels (tenant_id, name);

CREATE TABLE alert_routing_rules (
    _id            text COLLATE "C" PRIMARY KEY,
    tenant_id      text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    revision_id    text NOT NULL,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    doc            json NOT NULL CHECK (json_typeof(doc) = 'object'),
    name            text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'name') STORED,
    external_id     text COLLATE "C" GENERATED ALWAYS AS (doc ->> 'external_id') STORED,
    priority        numeric GENERATED ALWAYS AS (intake_doc_number(doc, 'priority', 0)) STORED,
    is_active       boolean GENERATED ALWAYS AS (intake_doc_bool(doc, 'is_active', true)) STORED
);
CREATE INDEX alert_routing_rules_tenant_created ON alert_routing_rules (tenant_id, is_deleted, created_at);
CREATE INDEX alert_routing_rules_tenant_priority ON alert_routing_rules (tenant_id, is_active, priority);
