/// <reference path="../pb_data/types.d.ts" />

// cfa: the monitor's memory and what it tells people. Superusers only (null rules): incidents
// name tenants and stacks, and nothing here is a tenant's to see or change.
//
// - `cfa_incident_tracks`: one record per subject and kind whose stream is not at rest (a
//   pending condition, an open incident, a flapping window, a silence); the pure state machine
//   of cfa_core::incidents as JSON, written only when it changes, deleted once at rest again.
// - `cfa_incidents`: one record per incident opened: `firing` until resolved, then `resolved`
//   with its time; what `cfa alerts` lists and acknowledges.
// - `cfa_alert_outbox`: every message owed to each channel, written before it is sent, so a
//   crash loses none; `delivered` once the channel took it, `abandoned` once given up.
migrate((app) => {
  const superusersOnly = {
    listRule: null,
    viewRule: null,
    createRule: null,
    updateRule: null,
    deleteRule: null,
  };
  const create = (name, fields, indexes) => {
    try {
      app.findCollectionByNameOrId(name);
      return;
    } catch (_) {
      // Not there yet: create it.
    }
    app.save(new Collection({ type: "base", name, ...superusersOnly, fields, indexes }));
  };
  create(
    "cfa_incident_tracks",
    [
      { name: "key", type: "text", required: true, max: 300 },
      { name: "subject", type: "json", required: true, maxSize: 4096 },
      { name: "kind", type: "text", required: true, max: 60 },
      { name: "track", type: "json", required: true, maxSize: 16384 },
      { name: "updated", type: "autodate", onCreate: true, onUpdate: true },
    ],
    ["CREATE UNIQUE INDEX `idx_cfa_incident_tracks_key` ON `cfa_incident_tracks` (`key`)"],
  );
  create(
    "cfa_incidents",
    [
      { name: "key", type: "text", required: true, max: 300 },
      { name: "kind", type: "text", required: true, max: 60 },
      { name: "flapping_of", type: "text", max: 60 },
      { name: "subject", type: "json", required: true, maxSize: 4096 },
      { name: "tenant", type: "text", max: 100 },
      { name: "stack", type: "text", max: 100 },
      { name: "status", type: "select", required: true, maxSelect: 1, values: ["firing", "resolved"] },
      { name: "opened_at", type: "date", required: true },
      { name: "resolved_at", type: "date" },
      { name: "detail", type: "text", max: 2000 },
      { name: "acknowledged_until", type: "date" },
      { name: "acknowledged_by", type: "text", max: 200 },
      { name: "created", type: "autodate", onCreate: true, onUpdate: false },
      { name: "updated", type: "autodate", onCreate: true, onUpdate: true },
    ],
    [
      "CREATE INDEX `idx_cfa_incidents_key` ON `cfa_incidents` (`key`, `status`)",
      "CREATE INDEX `idx_cfa_incidents_opened` ON `cfa_incidents` (`opened_at`)",
    ],
  );
  // One record per message and channel (cfa_alerts::Delivery): `delivery_id` is
  // `<message id>:<channel>`, unique, so a message queued twice is stored once.
  create(
    "cfa_alert_outbox",
    [
      { name: "delivery_id", type: "text", required: true, max: 300 },
      { name: "channel", type: "text", required: true, max: 100 },
      { name: "status", type: "select", required: true, maxSelect: 1, values: ["pending", "delivered", "abandoned"] },
      { name: "attempts", type: "number", onlyInt: true, min: 0 },
      { name: "next_attempt_at", type: "date", required: true },
      { name: "created_ms", type: "number", required: true, onlyInt: true },
      { name: "last_error", type: "text", max: 2000 },
      { name: "payload", type: "json", required: true, maxSize: 2097152 },
    ],
    [
      "CREATE UNIQUE INDEX `idx_cfa_alert_outbox_delivery` ON `cfa_alert_outbox` (`delivery_id`)",
      "CREATE INDEX `idx_cfa_alert_outbox_due` ON `cfa_alert_outbox` (`channel`, `status`, `created_ms`)",
    ],
  );
}, (app) => {
  for (const name of ["cfa_alert_outbox", "cfa_incidents", "cfa_incident_tracks"]) {
    try {
      app.delete(app.findCollectionByNameOrId(name));
    } catch (_) {
      // Already gone.
    }
  }
});
