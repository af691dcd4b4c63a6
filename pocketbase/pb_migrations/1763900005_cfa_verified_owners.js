/// <reference path="../pb_data/types.d.ts" />

// cfa: only a user who verified its e-mail acts as a tenant's owner. `users` sign-up is open
// and unverified, so an account with the owner's e-mail may be whoever registered it first;
// `cfa tenant create` adopts only verified accounts (or claims an unverified one when the
// operator says so), and the rules here make sure an unverified session sees and changes
// nothing of a tenant, on a new schema and on an existing `tenants` (whose own rules get the
// same guard appended, as 1763900000 does with its guards). Idempotent.
migrate((app) => {
  const VERIFIED = "@request.auth.verified = true";
  const guard = (rule) => {
    if (rule === null || rule === undefined || rule === "" || rule.indexOf(VERIFIED) >= 0) {
      return rule;
    }
    return "(" + rule + ") && " + VERIFIED;
  };
  for (const name of ["tenants", "agent_stacks"]) {
    const collection = app.findCollectionByNameOrId(name);
    let changed = false;
    for (const rule of ["listRule", "viewRule", "createRule", "updateRule"]) {
      const guarded = guard(collection[rule]);
      if (guarded !== collection[rule]) {
        collection[rule] = guarded;
        changed = true;
      }
    }
    // A save bumps `updated`: a rerun must change nothing.
    if (changed) {
      app.save(collection);
    }
  }
}, (app) => {
  const suffix = ") && @request.auth.verified = true";
  const strip = (rule) => {
    if (rule === null || rule === undefined) return rule;
    if (rule.startsWith("(") && rule.endsWith(suffix)) return rule.slice(1, rule.length - suffix.length);
    return rule;
  };
  for (const name of ["tenants", "agent_stacks"]) {
    const collection = app.findCollectionByNameOrId(name);
    collection.listRule = strip(collection.listRule);
    collection.viewRule = strip(collection.viewRule);
    collection.createRule = strip(collection.createRule);
    collection.updateRule = strip(collection.updateRule);
    app.save(collection);
  }
});
