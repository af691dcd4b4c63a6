/// <reference path="../pb_data/types.d.ts" />

// cfa: `tenants.resource_limits`, a sovereign tenant's custom per-stack ceiling
// ({"cpus": 6, "memory_mb": 12288}); empty means the platform's sovereign default. Other plans
// ignore it. Like the billing fields, only the operator may write it: owner-facing create and
// update rules get a guard appended. Its shape is checked by pb_hooks/cfa_tenants.pb.js.
// Idempotent: a second run finds the field and the guards in place and changes nothing.
migrate((app) => {
  const GUARD = "@request.body.resource_limits:isset = false";
  const tenants = app.findCollectionByNameOrId("tenants");
  let changed = false;
  if (!tenants.fields.getByName("resource_limits")) {
    tenants.fields.add(new JSONField({ name: "resource_limits", maxSize: 1000 }));
    changed = true;
  }
  for (const rule of ["updateRule", "createRule"]) {
    const current = tenants[rule];
    if (current !== null && current !== undefined && current.indexOf(GUARD) < 0) {
      tenants[rule] = current === "" ? GUARD : "(" + current + ") && " + GUARD;
      changed = true;
    }
  }
  if (changed) {
    app.save(tenants);
  }
}, (app) => {
  const GUARD = "@request.body.resource_limits:isset = false";
  let tenants = null;
  try {
    tenants = app.findCollectionByNameOrId("tenants");
  } catch (_) {
    return;
  }
  const strip = (rule) => {
    if (rule === null || rule === undefined) return rule;
    if (rule === GUARD) return "";
    const suffix = ") && " + GUARD;
    if (rule.startsWith("(") && rule.endsWith(suffix)) return rule.slice(1, rule.length - suffix.length);
    return rule;
  };
  tenants.updateRule = strip(tenants.updateRule);
  tenants.createRule = strip(tenants.createRule);
  tenants.fields.removeByName("resource_limits");
  app.save(tenants);
});
