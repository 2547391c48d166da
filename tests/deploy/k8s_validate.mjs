// k8s_validate.mjs — validates Kubernetes objects against the API's OpenAPI
// schemas, offline, with the kubernetes-models package (tests/package.json).
//   node tests/deploy/k8s_validate.mjs < objects.json     (a JSON array)
// Prints one line per object ("ok Kind/name" or "invalid Kind/name: why") and
// exits 1 if any object is invalid or of a kind the package does not know.
import { readFileSync } from "node:fs";

const objects = JSON.parse(readFileSync(0, "utf8"));
let bad = 0;
for (const o of objects) {
  const id = `${o.kind}/${o.metadata?.name}`;
  // apiVersion "apps/v1" -> kubernetes-models/apps/v1/Kind; core "v1" -> kubernetes-models/v1/Kind
  const module = `kubernetes-models/${o.apiVersion}/${o.kind}`;
  let Model;
  try {
    Model = (await import(module))[o.kind];
  } catch (e) {
    console.log(`invalid ${id}: no schema for ${o.apiVersion} ${o.kind} (${e.code || e.message})`);
    bad++;
    continue;
  }
  try {
    new Model(o).validate();
    console.log(`ok ${id}`);
  } catch (e) {
    console.log(`invalid ${id}: ${e.message}`);
    bad++;
  }
}
process.exit(bad ? 1 : 0);
