-- Reference DDL for CloudFreedom's PocketBase schema (PocketBase 0.40.6, SQLite).
--
-- This is the seed's "Migration SQL", corrected to what PocketBase really creates from our
-- migrations in pocketbase/pb_migrations (read back from a migrated data.db). It is
-- DOCUMENTATION: never apply it by hand. PocketBase owns its tables; the schema, the API rules
-- and the hooks come from `cfa pb install --pb-dir DIR` and a PocketBase restart, and
-- `cfa pb check` compares a live instance with them.
--
-- Corrections to the seed, and why:
-- * PocketBase columns have fixed defaults: every text/select/relation/date column is
--   `TEXT DEFAULT '' NOT NULL`, every number `NUMERIC DEFAULT 0 NOT NULL`, json
--   `JSON DEFAULT NULL`. "Not set" is '' (or 0), never NULL. The seed's `DEFAULT 1` and
--   `DEFAULT 'starter'` cannot be expressed: pb_hooks/cfa_tenants.pb.js applies them on create
--   and the migration backfills existing rows (the UPDATEs below).
-- * No FOREIGN KEY and no CHECK constraints: relations and select values are validated by
--   PocketBase, `ON DELETE CASCADE` is the relation field's cascadeDelete, and the `template`
--   values follow the template catalogue (a generated migration from `cfa pb install`), so no
--   template list is fixed here.
-- * Ids are PocketBase's 15-character random ids.
-- * `created_at`/`updated_at` are autodate fields (PocketBase's date format
--   `YYYY-MM-DD HH:MM:SS.mmmZ`, UTC), set by PocketBase, not by SQL defaults.
-- * `stack_name` is a DNS label of 1-40 characters (pattern `^[a-z0-9]+(-[a-z0-9]+)*$`), the
--   tenant's `slug` one of 1-22: both become Coolify names and domain labels.
-- * The seed's create rule (`... .count() < tenant_id.max_stacks`) is not valid PocketBase
--   syntax, and any rule-level count races; the quota is enforced by
--   pb_hooks/cfa_agent_stacks.pb.js in a transaction (see notes/pocketbase.md §3).
-- * audit_log is new (append-only: no API rule lets anyone but superusers read or write it).

-- tenants ------------------------------------------------------------------------------------
-- On CloudFreedom's instance `tenants` exists: only the two columns are added, and existing
-- rows get the defaults. Nothing else of the collection changes.
ALTER TABLE `tenants` ADD COLUMN `max_stacks` NUMERIC DEFAULT 0 NOT NULL;
ALTER TABLE `tenants` ADD COLUMN `plan_tier` TEXT DEFAULT '' NOT NULL;   -- starter | team | business | sovereign
UPDATE `tenants` SET `max_stacks` = 1 WHERE `max_stacks` IS NULL OR `max_stacks` = 0;
UPDATE `tenants` SET `plan_tier` = 'starter' WHERE `plan_tier` IS NULL OR `plan_tier` = '';
-- A sovereign tenant's per-stack ceiling, {"cpus": 6, "memory_mb": 12288}; NULL is the
-- platform's sovereign default. Operator-only, like the two above; its shape is checked by
-- pb_hooks/cfa_tenants.pb.js (pb_migrations/1763900003_cfa_tenants_resource_limits.js).
ALTER TABLE `tenants` ADD COLUMN `resource_limits` JSON DEFAULT NULL;

-- On a fresh instance the migration creates it whole (and the next one adds `resource_limits`):
-- CREATE TABLE `tenants` (
--     `id`         TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
--     `name`       TEXT DEFAULT '' NOT NULL,
--     `slug`       TEXT DEFAULT '' NOT NULL,            -- DNS label, unique
--     `user_id`    TEXT DEFAULT '' NOT NULL,            -- relation -> users.id (owner)
--     `max_stacks` NUMERIC DEFAULT 0 NOT NULL,          -- hook default 1
--     `plan_tier`  TEXT DEFAULT '' NOT NULL,            -- hook default 'starter'
--     `created`    TEXT DEFAULT '' NOT NULL,            -- autodate
--     `updated`    TEXT DEFAULT '' NOT NULL             -- autodate
-- );
-- CREATE UNIQUE INDEX `idx_tenants_slug` ON `tenants` (`slug`);
-- CREATE INDEX `idx_tenants_user_id` ON `tenants` (`user_id`);

-- agent_stacks -------------------------------------------------------------------------------
CREATE TABLE `agent_stacks` (
    `id`                   TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
    `tenant_id`            TEXT DEFAULT '' NOT NULL,  -- relation -> tenants.id, required, cascade delete
    `template`             TEXT DEFAULT '' NOT NULL,  -- select, values = the template catalogue
    `stack_name`           TEXT DEFAULT '' NOT NULL,  -- required, DNS label, unique per tenant
    `coolify_project_uuid` TEXT DEFAULT '' NOT NULL,  -- engine-owned
    `coolify_service_uuid` TEXT DEFAULT '' NOT NULL,  -- engine-owned
    `domain`               TEXT DEFAULT '' NOT NULL,  -- engine-owned
    `status`               TEXT DEFAULT '' NOT NULL,  -- select pending | deploying | running | stopped | error
    `created_at`           TEXT DEFAULT '' NOT NULL,  -- autodate (create)
    `updated_at`           TEXT DEFAULT '' NOT NULL,  -- autodate (create and update)
    `config`               JSON DEFAULT NULL,         -- non-secret template parameters only
    `resource_limits`      JSON DEFAULT NULL,         -- engine-owned
    `last_health_check`    TEXT DEFAULT '' NOT NULL,  -- date, engine-owned
    `error_message`        TEXT DEFAULT '' NOT NULL,  -- engine-owned
    `delete_requested_at`  TEXT DEFAULT '' NOT NULL   -- date: the tenant's delete request (set once, dated by PocketBase)
);
CREATE UNIQUE INDEX `idx_agent_stacks_tenant_stack` ON `agent_stacks` (`tenant_id`, `stack_name`);
CREATE INDEX `idx_agent_stacks_tenant` ON `agent_stacks` (`tenant_id`);
CREATE INDEX `idx_agent_stacks_status` ON `agent_stacks` (`status`);

-- audit_log ----------------------------------------------------------------------------------
CREATE TABLE `audit_log` (
    `id`      TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
    `time`    TEXT DEFAULT '' NOT NULL,   -- autodate (create)
    `actor`   TEXT DEFAULT '' NOT NULL,   -- cli:<operator> | controller | users:<id> (hook)
    `action`  TEXT DEFAULT '' NOT NULL,   -- stack.create | stack.update | stack.delete | stack.provision | ...
    `tenant`  TEXT DEFAULT '' NOT NULL,   -- tenant id as text: an entry outlives its tenant
    `stack`   TEXT DEFAULT '' NOT NULL,   -- stack id as text: an entry outlives its stack
    `before`  JSON DEFAULT NULL,          -- redacted snapshot
    `after`   JSON DEFAULT NULL,          -- redacted snapshot
    `outcome` TEXT DEFAULT '' NOT NULL,   -- select ok | failed | refused
    `error`   TEXT DEFAULT '' NOT NULL
);
CREATE INDEX `idx_audit_log_time` ON `audit_log` (`time`);
CREATE INDEX `idx_audit_log_tenant` ON `audit_log` (`tenant`, `time`);
CREATE INDEX `idx_audit_log_stack` ON `audit_log` (`stack`, `time`);

-- cfa_leases ---------------------------------------------------------------------------------
-- Who runs the controller. Superusers only; taken and renewed only through
-- POST /api/cfa/leases/{name} (pb_hooks/cfa_leases.pb.js), decided in one transaction on
-- PocketBase's clock.
CREATE TABLE `cfa_leases` (
    `id`         TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
    `name`       TEXT DEFAULT '' NOT NULL,      -- `controller`
    `holder`     TEXT DEFAULT '' NOT NULL,      -- <host>:<pid> of the controller holding it
    `expires_ms` NUMERIC DEFAULT 0 NOT NULL,    -- PocketBase's clock, ms since the epoch
    `last_pass`  JSON DEFAULT NULL,             -- the holder's last pass (cfa status --controller)
    `released`   BOOLEAN DEFAULT FALSE NOT NULL, -- given up by its holder (1763900010), not lost
    `renewed`    TEXT DEFAULT '' NOT NULL       -- autodate (create and update)
);
CREATE UNIQUE INDEX `idx_cfa_leases_name` ON `cfa_leases` (`name`);

-- The monitor (pb_migrations/1763900008_cfa_incidents.js, 1763900009_cfa_host_events.js).
-- Superusers only (no rules): incidents name tenants and stacks.

-- cfa_incident_tracks -------------------------------------------------------------------------
-- One stream (subject and kind) not at rest: cfa_core::incidents::IncidentTrack as JSON.
CREATE TABLE `cfa_incident_tracks` (
    `id`       TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
    `key`      TEXT DEFAULT '' NOT NULL,   -- stack:<tenant>/<stack>#<record id>/<kind>, platform/<kind>
    `subject`  JSON DEFAULT NULL,          -- {"type":"stack","tenant","stack","record_id"} | {"type":"platform"} ...
    `kind`     TEXT DEFAULT '' NOT NULL,   -- unhealthy, oom_killed, coolify_unreachable, ...
    `track`    JSON DEFAULT NULL,          -- state, open incident, pending run, recent checks, silence
    `updated`  TEXT DEFAULT '' NOT NULL
);
CREATE UNIQUE INDEX `idx_cfa_incident_tracks_key` ON `cfa_incident_tracks` (`key`);

-- cfa_incidents -------------------------------------------------------------------------------
-- One record per incident opened; `cfa alerts` lists and acknowledges them.
CREATE TABLE `cfa_incidents` (
    `id`                 TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
    `key`                TEXT DEFAULT '' NOT NULL,  -- subject and kind (flapping: /flapping:<kind>)
    `kind`               TEXT DEFAULT '' NOT NULL,
    `flapping_of`        TEXT DEFAULT '' NOT NULL,
    `subject`            JSON DEFAULT NULL,
    `tenant`             TEXT DEFAULT '' NOT NULL,
    `stack`              TEXT DEFAULT '' NOT NULL,
    `status`             TEXT DEFAULT '' NOT NULL,  -- firing | resolved
    `opened_at`          TEXT DEFAULT '' NOT NULL,
    `resolved_at`        TEXT DEFAULT '' NOT NULL,
    `detail`             TEXT DEFAULT '' NOT NULL,
    `acknowledged_until` TEXT DEFAULT '' NOT NULL,
    `acknowledged_by`    TEXT DEFAULT '' NOT NULL,
    `created`            TEXT DEFAULT '' NOT NULL,
    `updated`            TEXT DEFAULT '' NOT NULL
);
CREATE INDEX `idx_cfa_incidents_key` ON `cfa_incidents` (`key`, `status`);
CREATE INDEX `idx_cfa_incidents_opened` ON `cfa_incidents` (`opened_at`);

-- cfa_alert_outbox ----------------------------------------------------------------------------
-- Every message owed to each channel (cfa_alerts::Delivery), written before it is sent.
CREATE TABLE `cfa_alert_outbox` (
    `id`              TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
    `delivery_id`     TEXT DEFAULT '' NOT NULL,  -- <message id>:<channel>
    `channel`         TEXT DEFAULT '' NOT NULL,
    `status`          TEXT DEFAULT '' NOT NULL,  -- pending | delivered | abandoned
    `attempts`        NUMERIC DEFAULT 0 NOT NULL,
    `next_attempt_at` TEXT DEFAULT '' NOT NULL,
    `created_ms`      NUMERIC DEFAULT 0 NOT NULL, -- order within the channel
    `last_error`      TEXT DEFAULT '' NOT NULL,
    `payload`         JSON DEFAULT NULL           -- cfa_alerts::AlertMessage (the webhook's body)
);
CREATE UNIQUE INDEX `idx_cfa_alert_outbox_delivery` ON `cfa_alert_outbox` (`delivery_id`);
CREATE INDEX `idx_cfa_alert_outbox_due` ON `cfa_alert_outbox` (`channel`, `status`, `created_ms`);

-- cfa_host_events -----------------------------------------------------------------------------
-- What the host agents reported (POST /api/v1/agent/events on cfa serve), stored once.
CREATE TABLE `cfa_host_events` (
    `id`             TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
    `event_id`       TEXT DEFAULT '' NOT NULL,  -- sha256(timeNano, container id, action)
    `server`         TEXT DEFAULT '' NOT NULL,
    `container_name` TEXT DEFAULT '' NOT NULL,
    `tenant`         TEXT DEFAULT '' NOT NULL,  -- from the container's cloudfreedom.tenant label
    `stack`          TEXT DEFAULT '' NOT NULL,
    `kind`           TEXT DEFAULT '' NOT NULL,  -- oom | died | restarted | started | health
    `exit_code`      NUMERIC DEFAULT 0 NOT NULL,
    `healthy`        BOOLEAN DEFAULT FALSE NOT NULL,
    `at_ns`          NUMERIC DEFAULT 0 NOT NULL,
    `seen`           BOOLEAN DEFAULT FALSE NOT NULL, -- folded into incidents by a monitor pass
    `created`        TEXT DEFAULT '' NOT NULL
);
CREATE UNIQUE INDEX `idx_cfa_host_events_id` ON `cfa_host_events` (`event_id`);
CREATE INDEX `idx_cfa_host_events_unseen` ON `cfa_host_events` (`seen`, `tenant`, `stack`);
