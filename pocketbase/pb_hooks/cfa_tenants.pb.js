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
