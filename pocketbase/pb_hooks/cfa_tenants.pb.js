/// <reference path="../pb_data/types.d.ts" />

// cfa: defaults for `tenants` (PocketBase fields have no default value option: a number reads 0
// and a select '' when not given). Model-level, so every create path gets them: REST, batch,
// dashboard, and saves from other hooks. 0 means "not set": a tenant with no stacks allowed is
// a suspended customer, which the operator expresses by plan, not by max_stacks = 0.
onRecordCreate((e) => {
  if (!e.record.getString("plan_tier")) {
    e.record.set("plan_tier", "starter");
  }
  if (e.record.getInt("max_stacks") <= 0) {
    e.record.set("max_stacks", 1);
  }
  e.next();
}, "tenants");
