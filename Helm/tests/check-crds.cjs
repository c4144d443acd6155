// Why: kubernetes-validate has no schema for cert-manager's and the Prometheus operator's objects; this checks them against their CRDs' own schemas (npm kubernetes-models, scripts/npm).
// Usage: NODE_PATH=.tools/npm/node_modules node Helm/tests/check-crds.cjs RENDERED.yaml...
// Fails on an object of those API groups that breaks its CRD's schema, on a kind with no model, and
// when it found none at all (a render that lost them must not pass).
"use strict";
const fs = require("fs");
const YAML = require("yaml");

const groups = {
  "cert-manager.io/v1": require("@kubernetes-models/cert-manager/cert-manager.io/v1"),
  "monitoring.coreos.com/v1": require("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1"),
};

let checked = 0;
const problems = [];
for (const file of process.argv.slice(2)) {
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
    const obj = doc.toJS();
    const group = obj && groups[obj.apiVersion];
    if (!group) continue;
    const where = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
    const Model = group[obj.kind];
    if (!Model) {
      problems.push(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
      checked++;
    } catch (e) {
      problems.push(`${where}: ${e.message}`);
    }
  }
}
for (const p of problems) console.log(`  FAIL ${p}`);
console.log(`  CRD objects checked: ${checked}, problems: ${problems.length}`);
process.exit(problems.length || !checked ? 1 : 0);
