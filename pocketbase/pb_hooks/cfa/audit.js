/// <reference path="../../pb_data/types.d.ts" />

// cfa: helpers shared by the hooks. Functions defined at the top of a `.pb.js` file are not
// visible inside its handlers (each handler runs in its own VM), so handlers `require` this.

// Who made the request, as the audit log names it: `users:<id>`, `_superusers:<id>`, `anonymous`.
function actorOf(e) {
  if (!e.auth) {
    return "anonymous";
  }
  return e.auth.collection().name + ":" + e.auth.id;
}

// The record's fields as plain data (for `before`/`after`); null when there is no record.
// Field by field because json fields export as raw bytes and dates as objects.
function snapshotOf(record) {
  if (!record) {
    return null;
  }
  const snapshot = { id: record.id };
  const fields = record.collection().fields;
  for (let index = 0; index < fields.length; index++) {
    const field = fields[index];
    const name = field.getName();
    if (name === "id" || field.getHidden()) {
      continue;
    }
    switch (field.type()) {
      case "json": {
        const raw = record.getString(name);
        snapshot[name] = raw ? JSON.parse(raw) : null;
        // A credential pasted into a parameter never reaches the audit log.
        const value = snapshot[name];
        if (value !== null && typeof value === "object" && !Array.isArray(value)) {
          const looksSecret = require(`${__hooks}/cfa/config.js`).looksSecret;
          for (const key of Object.keys(value)) {
            if (looksSecret(value[key])) {
              value[key] = "***";
            }
          }
        }
        break;
      }
      case "number":
        snapshot[name] = record.getFloat(name);
        break;
      case "bool":
        snapshot[name] = record.getBool(name);
        break;
      default:
        snapshot[name] = record.getString(name);
    }
  }
  return snapshot;
}

// How the engine names a stack in the audit log: its tenant's slug and its stack name (not
// record ids), so `cfa audit --tenant <slug>` finds what tenants did too.
function namesOf(app, record) {
  let tenant = record.getString("tenant_id");
  try {
    tenant = app.findRecordById("tenants", tenant).getString("slug") || tenant;
  } catch (_) {
    // An unknown tenant id: keep the id.
  }
  return { tenant: tenant, stack: record.getString("stack_name") || record.id };
}

// Appends one entry with `app`, which must be the transaction's app when inside one (writing
// through $app there would wait forever for the single write connection).
function append(app, entry) {
  const collection = app.findCollectionByNameOrId("audit_log");
  const record = new Record(collection);
  record.set("actor", entry.actor);
  record.set("action", entry.action);
  record.set("tenant", entry.tenant || "");
  record.set("stack", entry.stack || "");
  record.set("before", entry.before);
  record.set("after", entry.after);
  record.set("outcome", entry.outcome || "ok");
  record.set("error", entry.error || "");
  app.save(record);
}

module.exports = { actorOf, snapshotOf, namesOf, append };
