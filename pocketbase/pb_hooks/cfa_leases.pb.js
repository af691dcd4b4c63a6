/// <reference path="../pb_data/types.d.ts" />

// The controller's lease: POST /api/cfa/leases/{name} with {"holder", "ttl_seconds"} (and,
// from the holder after a pass, "last_pass") takes the
// lease when it is free, expired or already the caller's, and renews it; the answer says
// whether the caller holds it and who does. POST /api/cfa/leases/{name}/release with
// {"holder"} gives it up (expires it now, marked released). Taking it from another holder answers
// `taken_over` with that holder, its expiry and whether it was released. Superusers only.
// One transaction per request, and PocketBase writes through one connection, so two callers
// are decided one after the other; expiry is judged on PocketBase's clock, never a caller's.

routerAdd("POST", "/api/cfa/leases/{name}", (e) => {
  const name = e.request.pathValue("name");
  const body = e.requestInfo().body || {};
  const holder = String(body.holder || "");
  const ttl = Number(body.ttl_seconds || 0);
  if (!name || name.length > 100 || !holder || holder.length > 200 || !(ttl >= 1 && ttl <= 3600)) {
    throw new BadRequestError("holder (1-200 characters) and ttl_seconds (1-3600) are required");
  }
  let answer = null;
  $app.runInTransaction((txApp) => {
    const now = Date.now();
    let lease = null;
    try {
      lease = txApp.findFirstRecordByData("cfa_leases", "name", name);
    } catch (_) {
      lease = null;
    }
    if (lease && lease.getString("holder") !== holder && lease.getInt("expires_ms") > now) {
      answer = { acquired: false, holder: lease.getString("holder"), expires_ms: lease.getInt("expires_ms") };
      return;
    }
    // Taken from another holder: whether that one gave it up, or its lease ran out (a
    // controller that stopped renewing), for the monitor's `controller_lease_lost`.
    let takenOver = null;
    if (lease && lease.getString("holder") !== holder) {
      takenOver = {
        holder: lease.getString("holder"),
        expires_ms: lease.getInt("expires_ms"),
        released: lease.getBool("released"),
      };
    }
    if (!lease) {
      lease = new Record(txApp.findCollectionByNameOrId("cfa_leases"));
      lease.set("name", name);
    }
    lease.set("holder", holder);
    lease.set("released", false);
    lease.set("expires_ms", now + ttl * 1000);
    if (body.last_pass !== undefined && body.last_pass !== null) {
      lease.set("last_pass", body.last_pass);
    }
    txApp.save(lease);
    answer = { acquired: true, holder: holder, expires_ms: now + ttl * 1000, taken_over: takenOver };
  });
  return e.json(200, {
    name: name,
    acquired: answer.acquired,
    holder: answer.holder,
    expires_ms: answer.expires_ms,
    taken_over: answer.taken_over || null,
    now_ms: Date.now(),
  });
}, $apis.requireSuperuserAuth());

routerAdd("POST", "/api/cfa/leases/{name}/release", (e) => {
  const name = e.request.pathValue("name");
  const body = e.requestInfo().body || {};
  const holder = String(body.holder || "");
  $app.runInTransaction((txApp) => {
    let lease = null;
    try {
      lease = txApp.findFirstRecordByData("cfa_leases", "name", name);
    } catch (_) {
      return;
    }
    // Released: expired now, so the next caller takes it; the holder and its last pass stay
    // for `cfa status --controller`.
    if (lease.getString("holder") === holder) {
      lease.set("expires_ms", Date.now());
      lease.set("released", true);
      txApp.save(lease);
    }
  });
  return e.noContent(204);
}, $apis.requireSuperuserAuth());
