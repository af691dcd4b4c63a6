/// <reference path="../pb_data/types.d.ts" />

// cfa: what the host agents report from Docker (OOM kills, exits, restarts, health), received
// by `cfa serve` (POST /api/v1/agent/events, HMAC-signed per server) and read by the monitor.
// Superusers only. `event_id` is unique: an agent that resends after an outage stores nothing
// twice. `seen` is set once a monitor pass has folded the event into its incidents.
migrate((app) => {
  try {
    app.findCollectionByNameOrId("cfa_host_events");
    return;
  } catch (_) {
    // Not there yet: create it.
  }
  app.save(new Collection({
    type: "base",
    name: "cfa_host_events",
    listRule: null,
    viewRule: null,
    createRule: null,
    updateRule: null,
    deleteRule: null,
    fields: [
      { name: "event_id", type: "text", required: true, max: 100 },
      { name: "server", type: "text", required: true, max: 100 },
      { name: "container_name", type: "text", max: 300 },
      { name: "tenant", type: "text", max: 100 },
      { name: "stack", type: "text", max: 100 },
      { name: "kind", type: "text", required: true, max: 30 },
      { name: "exit_code", type: "number", onlyInt: true },
      { name: "healthy", type: "bool" },
      { name: "at_ns", type: "number", onlyInt: true },
      { name: "seen", type: "bool" },
      { name: "created", type: "autodate", onCreate: true, onUpdate: false },
    ],
    indexes: [
      "CREATE UNIQUE INDEX `idx_cfa_host_events_id` ON `cfa_host_events` (`event_id`)",
      "CREATE INDEX `idx_cfa_host_events_unseen` ON `cfa_host_events` (`seen`, `tenant`, `stack`)",
    ],
  }));
}, (app) => {
  try {
    app.delete(app.findCollectionByNameOrId("cfa_host_events"));
  } catch (_) {
    // Already gone.
  }
});
