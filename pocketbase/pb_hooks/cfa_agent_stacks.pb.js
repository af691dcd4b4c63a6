/// <reference path="../pb_data/types.d.ts" />

// cfa: the per-tenant stack quota and the audit of tenant-side changes to `agent_stacks`.
//
// Quota: the API create rule runs on the read pool before the insert, so any "count < max"
// rule is a check-then-act race. Here the COUNT and the INSERT run in ONE transaction on
// PocketBase's single write connection, so concurrent creates are serialized and
// `max_stacks` holds for every REST create: tenants, superusers and /api/batch (whose
// transaction this one joins). The operator overrides only by raising `max_stacks`.
//
// Audit: creates and updates made by non-superusers (the tenant's own frontend) are appended to
// `audit_log` in the same transaction as the change, so an entry is never lost and never
// written for a change that rolled back. Superuser writes are the engine's, which audits its
// own actions with more context (the action it ran), so they are not audited twice here.
// Deletes are superusers' only (deleteRule null, pb_migrations/1763900004): the engine audits them.
// A tenant asks for a delete by setting `delete_requested_at` (pb_migrations/1763900007).

onRecordCreateRequest((e) => {
  const audit = require(`${__hooks}/cfa/audit.js`);
  const original = e.app;
  try {
    original.runInTransaction((txApp) => {
      const tenantId = e.record.getString("tenant_id");
      let tenant = null;
      if (tenantId) {
        try {
          tenant = txApp.findRecordById("tenants", tenantId);
        } catch (_) {
          // An unknown id: the normal field validation below reports it.
        }
      }
      if (tenant) {
        const max = tenant.getInt("max_stacks");
        const used = txApp.countRecords("agent_stacks", $dbx.hashExp({ tenant_id: tenantId }));
        if (used >= max) {
          throw new BadRequestError("Stack limit reached for this tenant.", {
            tenant_id: new ValidationError("stack_limit_reached", "max_stacks (" + max + ") reached"),
          });
        }
      }
      e.app = txApp;
      e.next();
      if (!e.hasSuperuserAuth()) {
        const names = audit.namesOf(txApp, e.record);
        audit.append(txApp, {
          actor: audit.actorOf(e),
          action: "stack.create",
          tenant: names.tenant,
          stack: names.stack,
          before: null,
          after: audit.snapshotOf(e.record),
        });
      }
    });
  } finally {
    e.app = original;
  }
}, "agent_stacks");

onRecordUpdateRequest((e) => {
  if (e.hasSuperuserAuth()) {
    // A conditional write: the engine sends `cfa_if_updated` (the `updated_at` it read) so
    // that it never overwrites a change it has not seen, e.g. a tenant's request written while
    // a deploy ran. Compared and saved in one transaction on the single write connection.
    const body = e.requestInfo().body || {};
    const expected = body["cfa_if_updated"];
    if (!expected) {
      return e.next();
    }
    const original = e.app;
    try {
      original.runInTransaction((txApp) => {
        const fresh = txApp.findRecordById("agent_stacks", e.record.id);
        const current = fresh.getDateTime("updated_at").string();
        if (current !== new DateTime(String(expected)).string()) {
          throw new ApiError(409, "The record changed since it was read.", {
            updated_at: new ValidationError("cfa_stale", current),
          });
        }
        e.app = txApp;
        e.next();
      });
    } finally {
      e.app = original;
    }
    return;
  }
  const audit = require(`${__hooks}/cfa/audit.js`);
  const before = audit.snapshotOf(e.record.original());
  // A tenant's delete request is dated by PocketBase's clock, not by what it sent, so the
  // grace period cannot be shortened (the update rule lets it be set once, never cleared).
  if (e.record.original().getString("delete_requested_at") === "" && e.record.getString("delete_requested_at") !== "") {
    e.record.set("delete_requested_at", new DateTime());
  }
  const original = e.app;
  try {
    original.runInTransaction((txApp) => {
      e.app = txApp;
      e.next();
      const names = audit.namesOf(txApp, e.record);
      audit.append(txApp, {
        actor: audit.actorOf(e),
        action: "stack.update",
        tenant: names.tenant,
        stack: names.stack,
        before: before,
        after: audit.snapshotOf(e.record),
      });
    });
  } finally {
    e.app = original;
  }
}, "agent_stacks");

// A record that still names its Coolify service is never deleted, whoever asks: the API, a
// superuser, the dashboard, a hook. While the service exists the record is what counts it
// against the tenant's quota and the server's capacity; the engine clears
// `coolify_service_uuid` once Coolify has deleted the service, then deletes the record.
// Model-level, so every delete path runs it.
onRecordDelete((e) => {
  if (e.record.getString("coolify_service_uuid") !== "") {
    throw new BadRequestError(
      "This stack's Coolify service still exists; delete the stack through the platform (cfa delete).",
    );
  }
  e.next();
}, "agent_stacks");

// `config` holds only the template's declared non-secret parameters, each valid as the
// renderer checks it (cfa/config.js, rules generated from the catalogue). Checked when it
// changes, whoever writes (model-level): an older record whose config predates the rules stays
// manageable until someone writes its config.
onRecordValidate((e) => {
  const raw = e.record.getString("config");
  if (e.record.isNew() || e.record.original().getString("config") !== raw) {
    const problem = require(`${__hooks}/cfa/config.js`).problemOfConfig(e.record.getString("template"), raw);
    if (problem !== null) {
      throw new BadRequestError("Invalid config.", {
        config: new ValidationError("invalid_config", problem),
      });
    }
  }
  e.next();
}, "agent_stacks");
