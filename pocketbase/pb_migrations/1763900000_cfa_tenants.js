/// <reference path="../pb_data/types.d.ts" />

// cfa: `tenants` with the two billing fields the platform needs (max_stacks, plan_tier).
//
// If `tenants` exists (CloudFreedom's live instance), it is EXTENDED, never replaced: only the
// missing fields are added, every other field, rule and record is kept, and the spec defaults
// are backfilled (PocketBase has no field defaults: a new NUMERIC column reads 0, a select '').
// Owner-facing create/update rules that exist get guards appended so a tenant user can never
// set its own billing fields. If `tenants` does not exist (a fresh instance), it is created.
// Idempotent: a second run finds everything in place and changes nothing.
migrate((app) => {
  const PLAN_TIERS = ["starter", "team", "business", "sovereign"];
  const UPDATE_GUARD =
    "@request.body.max_stacks:isset = false && @request.body.plan_tier:isset = false && @request.body.user_id:isset = false";
  const CREATE_GUARD = "@request.body.max_stacks:isset = false && @request.body.plan_tier:isset = false";

  let tenants = null;
  try {
    tenants = app.findCollectionByNameOrId("tenants");
  } catch (_) {
    tenants = null;
  }

  if (tenants === null) {
    const users = app.findCollectionByNameOrId("users");
    const OWNER = "@request.auth.id != '' && user_id = @request.auth.id";
    tenants = new Collection({
      type: "base",
      name: "tenants",
      listRule: OWNER,
      viewRule: OWNER,
      // Tenants are created by the operator (superuser) only.
      createRule: null,
      // An owner may rename its tenant, nothing else: slug names its Coolify project and domains.
      updateRule: OWNER + " && @request.body.slug:isset = false && " + UPDATE_GUARD,
      deleteRule: null,
      fields: [
        { name: "name", type: "text", required: true, max: 200 },
        // A DNS label (cfa-core TenantSlug: 1-22 chars, lowercase, digits, inner single hyphens).
        { name: "slug", type: "text", required: true, min: 1, max: 22, pattern: "^[a-z0-9]+(-[a-z0-9]+)*$" },
        { name: "user_id", type: "relation", required: true, collectionId: users.id, maxSelect: 1, cascadeDelete: false },
        { name: "max_stacks", type: "number", onlyInt: true, min: 0 },
        { name: "plan_tier", type: "select", maxSelect: 1, values: PLAN_TIERS },
        { name: "created", type: "autodate", onCreate: true, onUpdate: false },
        { name: "updated", type: "autodate", onCreate: true, onUpdate: true },
      ],
      indexes: [
        "CREATE UNIQUE INDEX `idx_tenants_slug` ON `tenants` (`slug`)",
        "CREATE INDEX `idx_tenants_user_id` ON `tenants` (`user_id`)",
      ],
    });
    app.save(tenants);
    return;
  }

  if (!tenants.fields.getByName("user_id")) {
    throw new Error(
      "cfa: the existing `tenants` collection has no `user_id` relation to `users`; agent_stacks' ownership rules need it (add it, then migrate again)",
    );
  }
  let changed = false;
  if (!tenants.fields.getByName("max_stacks")) {
    tenants.fields.add(new NumberField({ name: "max_stacks", onlyInt: true, min: 0 }));
    changed = true;
  }
  if (!tenants.fields.getByName("plan_tier")) {
    tenants.fields.add(new SelectField({ name: "plan_tier", maxSelect: 1, values: PLAN_TIERS }));
    changed = true;
  }
  // A rule that lets owners write must not let them write their own quota or plan.
  if (tenants.updateRule !== null && tenants.updateRule !== undefined && tenants.updateRule.indexOf(UPDATE_GUARD) < 0) {
    tenants.updateRule = tenants.updateRule === "" ? UPDATE_GUARD : "(" + tenants.updateRule + ") && " + UPDATE_GUARD;
    changed = true;
  }
  if (tenants.createRule !== null && tenants.createRule !== undefined && tenants.createRule.indexOf(CREATE_GUARD) < 0) {
    tenants.createRule = tenants.createRule === "" ? CREATE_GUARD : "(" + tenants.createRule + ") && " + CREATE_GUARD;
    changed = true;
  }
  if (changed) {
    app.save(tenants);
  }

  // Backfill the defaults on rows that predate the fields (0 / '' are "never set").
  app.db().newQuery("UPDATE `tenants` SET `max_stacks` = 1 WHERE `max_stacks` IS NULL OR `max_stacks` = 0").execute();
  app.db().newQuery("UPDATE `tenants` SET `plan_tier` = 'starter' WHERE `plan_tier` IS NULL OR `plan_tier` = ''").execute();
}, (app) => {
  // Reverse only what `up` added to a pre-existing collection; a collection `up` created is
  // dropped only when it holds no records (never lose customer data on a rollback).
  let tenants = null;
  try {
    tenants = app.findCollectionByNameOrId("tenants");
  } catch (_) {
    return;
  }
  const UPDATE_GUARD =
    "@request.body.max_stacks:isset = false && @request.body.plan_tier:isset = false && @request.body.user_id:isset = false";
  const CREATE_GUARD = "@request.body.max_stacks:isset = false && @request.body.plan_tier:isset = false";
  const strip = (rule, guard) => {
    if (rule === null || rule === undefined) return rule;
    if (rule === guard) return "";
    const suffix = ") && " + guard;
    if (rule.startsWith("(") && rule.endsWith(suffix)) return rule.slice(1, rule.length - suffix.length);
    return rule;
  };
  const createdByUp = tenants.indexes.some((index) => index.indexOf("idx_tenants_slug") >= 0);
  if (createdByUp) {
    if (app.countRecords("tenants") === 0) {
      app.delete(tenants);
    }
    return;
  }
  tenants.updateRule = strip(tenants.updateRule, UPDATE_GUARD);
  tenants.createRule = strip(tenants.createRule, CREATE_GUARD);
  tenants.fields.removeByName("max_stacks");
  tenants.fields.removeByName("plan_tier");
  app.save(tenants);
});
