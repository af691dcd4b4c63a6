/// <reference path="../pb_data/types.d.ts" />

// cfa: `cfa_leases.released`, set when the holder gave the lease up (POST .../release) and
// cleared when anyone takes it. A successor that finds the previous holder's lease ended
// without a release knows that controller stopped renewing (it died, hung, or lost
// PocketBase), and the monitor opens `controller_lease_lost`; a release is a clean handover.
// Idempotent: a second run finds the field and changes nothing.
migrate((app) => {
  const leases = app.findCollectionByNameOrId("cfa_leases");
  if (!leases.fields.getByName("released")) {
    leases.fields.add(new BoolField({ name: "released" }));
    app.save(leases);
  }
}, (app) => {
  let leases = null;
  try {
    leases = app.findCollectionByNameOrId("cfa_leases");
  } catch (_) {
    return;
  }
  if (leases.fields.getByName("released")) {
    leases.fields.removeByName("released");
    app.save(leases);
  }
});
