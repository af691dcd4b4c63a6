/// <reference path="../pb_data/types.d.ts" />

// cfa: `agent_stacks`, one record per tenant stack (the seed's fields, nothing more).
//
// Rules (the tenant's side; the engine works as a superuser, which bypasses rules):
// - list/view/delete: own stacks only (through tenant_id.user_id);
// - create: own tenant only, status 'pending', none of the engine-owned fields set;
// - update: own only; tenant_id, stack_name, template and the engine-owned fields unchanged;
//   status may only become 'stopped' (suspend: from running or error) or 'pending' (resume
//   from stopped, retry from error), the tenant-side edges of cfa-core's lifecycle.
// The per-tenant quota (max_stacks) is NOT a rule: a rule's count races (checked on the read
// pool before the insert); it is enforced in pb_hooks/cfa_agent_stacks.pb.js in a transaction.
// The `template` values here are the catalogue at the time of writing; `cfa pb install` adds a
// generated migration that sets them to the catalogue in `templates/`.
// Idempotent: an existing `agent_stacks` is left as it is (`cfa pb check` reports drift).
migrate((app) => {
  try {
    app.findCollectionByNameOrId("agent_stacks");
    return;
  } catch (_) {
    // Not there yet: create it.
  }
  const tenants = app.findCollectionByNameOrId("tenants");
  const OWN = "@request.auth.id != '' && tenant_id.user_id = @request.auth.id";
  const ENGINE_FIELDS = [
    "coolify_project_uuid",
    "coolify_service_uuid",
    "domain",
    "resource_limits",
    "last_health_check",
    "error_message",
  ];
  const createRule = [OWN, "status = 'pending'"]
    .concat(ENGINE_FIELDS.map((field) => "@request.body." + field + ":isset = false"))
    .join(" && ");
  const updateRule = [OWN]
    .concat(["tenant_id", "stack_name", "template"].concat(ENGINE_FIELDS).map((field) => "@request.body." + field + ":changed = false"))
    .concat([
      "(@request.body.status:changed = false" +
        " || (@request.body.status = 'stopped' && (status = 'running' || status = 'error'))" +
        " || (@request.body.status = 'pending' && (status = 'stopped' || status = 'error')))",
    ])
    .join(" && ");

  const collection = new Collection({
    type: "base",
    name: "agent_stacks",
    listRule: OWN,
    viewRule: OWN,
    createRule: createRule,
    updateRule: updateRule,
    deleteRule: OWN,
    fields: [
      { name: "tenant_id", type: "relation", required: true, collectionId: tenants.id, maxSelect: 1, cascadeDelete: true },
      { name: "template", type: "select", required: true, maxSelect: 1, values: ["base-llm", "openclaw-agent", "telegram-bot"] },
      // A DNS label of 1-40 chars (cfa-core StackName): it names the Coolify service and domain.
      { name: "stack_name", type: "text", required: true, min: 1, max: 40, pattern: "^[a-z0-9]+(-[a-z0-9]+)*$" },
      { name: "coolify_project_uuid", type: "text", max: 100 },
      { name: "coolify_service_uuid", type: "text", max: 100 },
      { name: "domain", type: "text", max: 253 },
      { name: "status", type: "select", required: true, maxSelect: 1, values: ["pending", "deploying", "running", "stopped", "error"] },
      { name: "created_at", type: "autodate", onCreate: true, onUpdate: false },
      { name: "updated_at", type: "autodate", onCreate: true, onUpdate: true },
      { name: "config", type: "json", maxSize: 65536 },
      { name: "resource_limits", type: "json", maxSize: 65536 },
      { name: "last_health_check", type: "date" },
      { name: "error_message", type: "text", max: 5000 },
    ],
    indexes: [
      "CREATE UNIQUE INDEX `idx_agent_stacks_tenant_stack` ON `agent_stacks` (`tenant_id`, `stack_name`)",
      "CREATE INDEX `idx_agent_stacks_tenant` ON `agent_stacks` (`tenant_id`)",
      "CREATE INDEX `idx_agent_stacks_status` ON `agent_stacks` (`status`)",
    ],
  });
  app.save(collection);
}, (app) => {
  try {
    app.delete(app.findCollectionByNameOrId("agent_stacks"));
  } catch (_) {
    // Already gone.
  }
});
