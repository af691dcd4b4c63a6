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

// cfa: `resource_limits` (a sovereign tenant's per-stack ceiling) is empty or exactly
// {"cpus": <number>, "memory_mb": <integer>}: the engine reads it as the stack ceiling, so a
// typo must be refused here, not silently replaced by the default. Model-level: every write path.
onRecordValidate((e) => {
  const raw = e.record.getString("resource_limits");
  if (raw !== "" && raw !== "null") {
    let limits = null;
    try {
      limits = JSON.parse(raw);
    } catch (_) {
      limits = null;
    }
    const keys = limits !== null && typeof limits === "object" && !Array.isArray(limits) ? Object.keys(limits).sort() : [];
    const valid =
      keys.length === 2 && keys[0] === "cpus" && keys[1] === "memory_mb" &&
      typeof limits.cpus === "number" && limits.cpus > 0 && limits.cpus <= 1024 &&
      Number.isInteger(limits.memory_mb) && limits.memory_mb >= 64 && limits.memory_mb <= 4194304;
    if (!valid) {
      throw new BadRequestError("Invalid resource_limits.", {
        resource_limits: new ValidationError(
          "invalid_resource_limits",
          'must be empty or {"cpus": <number, 0-1024>, "memory_mb": <integer, 64-4194304>}',
        ),
      });
    }
  }
  e.next();
}, "tenants");

// cfa: a slug names the tenant's Coolify project and every domain of its stacks: it is unique
// and never changes, whoever writes (the operator's `cfa`, a superuser, the owner through its
// own rules on an existing `tenants` collection). Model-level, so every write path runs it;
// the unique index (pb_migrations/1763900004) holds the same when existing data allows it.
onRecordValidate((e) => {
  const slug = e.record.getString("slug");
  if (!e.record.isNew()) {
    const before = e.record.original().getString("slug");
    if (before !== slug) {
      throw new BadRequestError("A tenant's slug cannot change.", {
        slug: new ValidationError("slug_immutable", "the slug names the tenant's Coolify project and domains"),
      });
    }
  }
  // Only a new record can take a slug (an existing one keeps its own, checked above).
  if (e.record.isNew() && e.app.countRecords("tenants", $dbx.hashExp({ slug: slug })) > 0) {
    throw new BadRequestError("This slug is taken.", {
      slug: new ValidationError("slug_taken", "another tenant has this slug"),
    });
  }
  e.next();
}, "tenants");
