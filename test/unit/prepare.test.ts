// The prepare step's disk preflight: what kubelet's default thresholds would do to a node.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stringify } from "yaml";
import { parseInventory } from "../../src/inventory/load";
import { diskProblem } from "../../src/steps/prepare";
import { baseInventory } from "../helpers/fixtures";

const inv = (extraArgs: Record<string, string> = {}) => parseInventory(stringify({ ...baseInventory(), kubelet: { extraArgs } }), "/x/cluster.yaml").inventory;
const GIB = 1024 * 1024;

test("under 15% free on /var/lib is refused with the numbers and both fixes", () => {
  const msg = diskProblem({ inv: inv() }, `${252 * GIB} ${34 * GIB}`);
  assert.match(msg ?? "", /^\/var\/lib has 13\.5% free \(34\.0 of 252\.0 GiB\); kubelet's defaults evict pods below 15% free .* kubelet\.extraArgs \(eviction-hard, image-gc-high-threshold\)$/);
});

test("15% free or more passes; thresholds the operator chose are theirs; no df output is no verdict", () => {
  assert.equal(diskProblem({ inv: inv() }, `${100 * GIB} ${15 * GIB}`), undefined);
  assert.equal(diskProblem({ inv: inv({ "eviction-hard": "imagefs.available<2Gi" }) }, `${100 * GIB} ${1 * GIB}`), undefined);
  assert.equal(diskProblem({ inv: inv({ "image-gc-high-threshold": "95" }) }, `${100 * GIB} ${1 * GIB}`), undefined);
  assert.equal(diskProblem({ inv: inv() }, ""), undefined);
});
