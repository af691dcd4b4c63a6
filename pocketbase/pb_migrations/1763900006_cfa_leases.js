/// <reference path="../pb_data/types.d.ts" />

// cfa: `cfa_leases`, who runs the controller. One record per lease name; superusers only (null
// rules). Taken and renewed only through POST /api/cfa/leases/{name} (pb_hooks/cfa_leases.pb.js),
// which decides inside one transaction, on PocketBase's clock, so two controllers never both
// hold it.
migrate((app) => {
  try {
    app.findCollectionByNameOrId("cfa_leases");
    return;
  } catch (_) {
    // Not there yet: create it.
  }
  const collection = new Collection({
    type: "base",
    name: "cfa_leases",
    listRule: null,
    viewRule: null,
    createRule: null,
    updateRule: null,
    deleteRule: null,
    fields: [
      { name: "name", type: "text", required: true, max: 100 },
      { name: "holder", type: "text", required: true, max: 200 },
      { name: "expires_ms", type: "number", required: true, onlyInt: true },
      // What the holder's last pass saw and did (`cfa status --controller` shows it).
      { name: "last_pass", type: "json", maxSize: 65536 },
      { name: "renewed", type: "autodate", onCreate: true, onUpdate: true },
    ],
    indexes: ["CREATE UNIQUE INDEX `idx_cfa_leases_name` ON `cfa_leases` (`name`)"],
  });
  app.save(collection);
}, (app) => {
  try {
    app.delete(app.findCollectionByNameOrId("cfa_leases"));
  } catch (_) {
    // Already gone.
  }
});
