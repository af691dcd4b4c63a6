/// <reference path="../pb_data/types.d.ts" />

// cfa: `audit_log`, append-only. No rule lets anyone but superusers read or write it (null
// rules are superuser-only); the engine appends as a superuser and the agent_stacks hook
// appends inside the transaction of the change it records. `tenant` and `stack` are plain
// text ids, not relations: an entry must outlive the tenant or stack it is about (a relation
// would be cleared or cascade-deleted).
migrate((app) => {
  try {
    app.findCollectionByNameOrId("audit_log");
    return;
  } catch (_) {
    // Not there yet: create it.
  }
  const collection = new Collection({
    type: "base",
    name: "audit_log",
    listRule: null,
    viewRule: null,
    createRule: null,
    updateRule: null,
    deleteRule: null,
    fields: [
      { name: "time", type: "autodate", onCreate: true, onUpdate: false },
      { name: "actor", type: "text", required: true, max: 200 },
      { name: "action", type: "text", required: true, max: 100 },
      { name: "tenant", type: "text", max: 100 },
      { name: "stack", type: "text", max: 100 },
      { name: "before", type: "json", maxSize: 262144 },
      { name: "after", type: "json", maxSize: 262144 },
      { name: "outcome", type: "select", required: true, maxSelect: 1, values: ["ok", "failed", "refused"] },
      { name: "error", type: "text", max: 5000 },
    ],
    indexes: [
      "CREATE INDEX `idx_audit_log_time` ON `audit_log` (`time`)",
      "CREATE INDEX `idx_audit_log_tenant` ON `audit_log` (`tenant`, `time`)",
      "CREATE INDEX `idx_audit_log_stack` ON `audit_log` (`stack`, `time`)",
    ],
  });
  app.save(collection);
}, (app) => {
  try {
    app.delete(app.findCollectionByNameOrId("audit_log"));
  } catch (_) {
    // Already gone.
  }
});
