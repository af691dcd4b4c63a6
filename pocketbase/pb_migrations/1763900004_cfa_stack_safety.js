/// <reference path="../pb_data/types.d.ts" />

// cfa: a stack record lives as long as its Coolify service, and slugs and domains name one
// tenant each; on a new schema and on an existing one (the production path, where the earlier
// migrations leave existing collections as they were).
// - agent_stacks: nobody deletes a record through the API but superusers (deleteRule null): a
//   tenant asks the platform for a delete, and the engine removes the record once the service
//   is gone. `tenant_id` no longer cascades: deleting a tenant that has stacks is refused.
//   pb_hooks/cfa_agent_stacks.pb.js refuses any delete of a record that still names a service.
// - agent_stacks.domain: unique among the records that have one (`<stack>-<tenant>` labels
//   can collide; the engine also refuses suffixes of other tenants' slugs).
// - tenants.slug: unique. Existing duplicates are not touched (the index is then left out and
//   `cfa pb check` reports them); pb_hooks/cfa_tenants.pb.js refuses new ones and any change
//   of a slug, whoever writes.
migrate((app) => {
  // Saved only when something changes: a save bumps `updated`, and a rerun must change nothing.
  const stacks = app.findCollectionByNameOrId("agent_stacks");
  let changed = false;
  if (stacks.deleteRule !== null && stacks.deleteRule !== undefined) {
    stacks.deleteRule = null;
    changed = true;
  }
  const tenantField = stacks.fields.getByName("tenant_id");
  if (tenantField && tenantField.cascadeDelete) {
    tenantField.cascadeDelete = false;
    changed = true;
  }
  if (!stacks.indexes.some((index) => index.indexOf("idx_agent_stacks_domain") >= 0)) {
    stacks.addIndex("idx_agent_stacks_domain", true, "`domain`", "`domain` != ''");
    changed = true;
  }
  if (changed) {
    app.save(stacks);
  }

  const tenants = app.findCollectionByNameOrId("tenants");
  const hasSlugIndex = tenants.indexes.some(
    (index) => index.indexOf("UNIQUE") >= 0 && index.indexOf("(`slug`)") >= 0,
  );
  if (!hasSlugIndex) {
    const duplicates = arrayOf(new DynamicModel({ slug: "" }));
    app.db().newQuery("SELECT `slug` FROM `tenants` GROUP BY `slug` HAVING COUNT(*) > 1").all(duplicates);
    if (duplicates.length === 0) {
      // Its own name: 1763900000 creates `idx_tenants_slug` with the collection, and its down
      // migration reads that name as "this collection is ours".
      tenants.addIndex("idx_tenants_slug_unique", true, "`slug`", "");
      app.save(tenants);
    } else {
      console.log("cfa: tenants share slugs (" + duplicates.map((row) => row.slug).join(", ") + "); no unique index until they are fixed");
    }
  }
}, (app) => {
  const stacks = app.findCollectionByNameOrId("agent_stacks");
  stacks.removeIndex("idx_agent_stacks_domain");
  stacks.deleteRule = "@request.auth.id != '' && tenant_id.user_id = @request.auth.id";
  const tenantField = stacks.fields.getByName("tenant_id");
  if (tenantField) {
    tenantField.cascadeDelete = true;
  }
  app.save(stacks);
  const tenants = app.findCollectionByNameOrId("tenants");
  if (tenants.indexes.some((index) => index.indexOf("idx_tenants_slug_unique") >= 0)) {
    tenants.removeIndex("idx_tenants_slug_unique");
    app.save(tenants);
  }
});
