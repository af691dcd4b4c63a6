/// <reference path="../pb_data/types.d.ts" />

// cfa: `agent_stacks.delete_requested_at`, how a tenant asks for its stack to be deleted.
// Records cannot be deleted through the API (1763900004), because a record must outlive its
// Coolify service. A tenant sets this field instead (any non-empty value; the hook in
// pb_hooks/cfa_agent_stacks.pb.js replaces it with PocketBase's clock, so nobody shortens the
// grace period by sending an old date). The controller removes the service after the grace
// period, with the final backup, and then the record; the record counts against `max_stacks`
// until then. The guard appended to the update rule lets a tenant set the field once and
// never clear it, and freezes `status` once it is set (no resume of a stack being deleted).
// Idempotent: a second run finds the field and the guard in place and changes nothing.
migrate((app) => {
  const GUARD =
    "(@request.body.delete_requested_at:changed = false || delete_requested_at = '')" +
    " && (delete_requested_at = '' || @request.body.status:changed = false)";
  const stacks = app.findCollectionByNameOrId("agent_stacks");
  let changed = false;
  if (!stacks.fields.getByName("delete_requested_at")) {
    stacks.fields.add(new DateField({ name: "delete_requested_at" }));
    changed = true;
  }
  // Tenants may not create a record that already asks for its own deletion.
  const CREATE_GUARD = "@request.body.delete_requested_at:isset = false";
  for (const [rule, guard] of [["updateRule", GUARD], ["createRule", CREATE_GUARD]]) {
    const current = stacks[rule];
    if (current !== null && current !== undefined && current.indexOf(guard) < 0) {
      stacks[rule] = current === "" ? guard : "(" + current + ") && " + guard;
      changed = true;
    }
  }
  if (changed) {
    app.save(stacks);
  }
}, (app) => {
  const GUARD =
    "(@request.body.delete_requested_at:changed = false || delete_requested_at = '')" +
    " && (delete_requested_at = '' || @request.body.status:changed = false)";
  const CREATE_GUARD = "@request.body.delete_requested_at:isset = false";
  let stacks = null;
  try {
    stacks = app.findCollectionByNameOrId("agent_stacks");
  } catch (_) {
    return;
  }
  const strip = (rule, guard) => {
    if (rule === null || rule === undefined) return rule;
    if (rule === guard) return "";
    const suffix = ") && " + guard;
    if (rule.startsWith("(") && rule.endsWith(suffix)) return rule.slice(1, rule.length - suffix.length);
    return rule;
  };
  stacks.updateRule = strip(stacks.updateRule, GUARD);
  stacks.createRule = strip(stacks.createRule, CREATE_GUARD);
  stacks.fields.removeByName("delete_requested_at");
  app.save(stacks);
});
