// kubelet.extraArgs policy: the tables it rests on agree with what binkube renders, so a field or
// flag added to a kubelet template is protected (or this test says which table to extend).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { stringify } from "yaml";
import { KUBELET_WEAKENING } from "../../src/inventory/extra-args";
import { KUBELET_FLAGS } from "../../src/inventory/kubelet-flags";
import { InventoryError, parseInventory } from "../../src/inventory/load";
import { flagsIn, kubeletWrites } from "../../src/steps/kubelet-files";
import { baseInventory } from "../helpers/fixtures";

/** Fields of kubelet-config.yml that no flag sets (so no flag can override them). */
// nodeStatusReportFrequency: config file only in v1.17 (no --node-status-report-frequency)
const NO_FLAG = ["kind", "apiVersion", "nodeStatusReportFrequency"];

const load = (kubelet: Record<string, unknown>) => parseInventory(stringify({ ...baseInventory(), kubelet }), "/x/cluster.yaml");
const refusal = (kubelet: Record<string, unknown>) => {
  try {
    load(kubelet);
  } catch (e) {
    assert.ok(e instanceof InventoryError);
    return e.issues;
  }
  assert.fail("accepted");
};

describe("kubelet.extraArgs policy", () => {
  test("every field binkube writes into kubelet-config.yml has its v1.17 flag in the table (or none exists)", () => {
    const configOf = new Set(Object.values(KUBELET_FLAGS).filter((c): c is string => c !== null));
    const uncovered = [...kubeletWrites().config].filter((p) => !NO_FLAG.includes(p) && ![...configOf].some((c) => p === c || p.startsWith(`${c}.`)));
    assert.deepEqual(uncovered, [], "fields written but not mapped to a flag: regenerate src/inventory/kubelet-flags.ts or add to NO_FLAG");
    assert.ok(kubeletWrites().config.has("authentication.anonymous.enabled") && kubeletWrites().config.has("readOnlyPort"), "the rendered config is read");
  });

  test("every flag binkube puts on the kubelet's command line, and every weakening flag, is a v1.17 kubelet flag", () => {
    const unknown = [...kubeletWrites().flags, ...Object.keys(KUBELET_WEAKENING)].filter((f) => !(f in KUBELET_FLAGS));
    assert.deepEqual(unknown, []);
    assert.ok(kubeletWrites().flags.has("node-labels"), "optional parts are rendered too");
  });

  test("flagsIn reads --name=value words of a flags file", () => {
    assert.deepEqual([...flagsIn('OPTS="--a=1 \\\n--b-c=/x \\\n--d=e"')], ["a", "b-c", "d"]);
  });

  test("a flag that sets a field binkube writes is refused, derived from the rendered file (cgroup-driver, healthz-port, config-only)", () => {
    for (const flag of ["cgroup-driver", "healthz-port", "max-open-files", "cluster-domain"]) {
      const hit = refusal({ extraArgs: { [flag]: "x" } }).find((i) => i.field === `kubelet.extraArgs.${flag}`);
      assert.ok(hit, flag);
      assert.match(hit.message, /is set by binkube in its config file/);
    }
  });

  test("legitimate flags pass: sizing (max-pods, eviction-hard, the status tick) and flags binkube does not set", () => {
    const { inventory, warnings } = load({ extraArgs: { "max-pods": "60", "eviction-hard": "memory.available<200Mi", "node-status-update-frequency": "10s", "root-dir": "/data/kubelet", "image-gc-high-threshold": "90" } });
    assert.equal(inventory.kubelet.extraArgs["max-pods"], "60");
    assert.equal(inventory.kubelet.extraArgs["node-status-update-frequency"], "10s");
    assert.deepEqual(warnings, []);
  });

  test("a weakening flag named in kubelet.weakened with a reason is accepted and warned about, with its CIS check", () => {
    const { inventory, warnings } = load({ extraArgs: { "read-only-port": "10255" }, weakened: [{ flag: "read-only-port", reason: "the legacy metrics agent reads :10255 until Q3" }] });
    assert.deepEqual(inventory.kubelet.weakened, [{ flag: "read-only-port", reason: "the legacy metrics agent reads :10255 until Q3" }]);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.field, "kubelet.extraArgs.read-only-port");
    assert.match(warnings[0]!.message, /weakens the kubelet: .*CIS 4\.2\.4 fails .*legacy metrics agent/);
  });

  test("kubelet.weakened: a reason is required, an entry must name a flag in extraArgs that weakens", () => {
    const issues = refusal({ extraArgs: { "anonymous-auth": "true", "root-dir": "/data" }, weakened: [{ flag: "anonymous-auth", reason: "" }, { flag: "root-dir", reason: "a reason long enough" }, { flag: "read-only-port", reason: "a reason long enough" }] });
    const by = (f: string) => issues.find((i) => i.field === f)?.message ?? "";
    assert.match(by("kubelet.weakened[0].reason"), /is required/);
    assert.match(by("kubelet.extraArgs.anonymous-auth"), /would weaken the kubelet/);
    assert.match(by("kubelet.weakened[1].flag"), /not a setting that weakens/);
    assert.match(by("kubelet.weakened[2].flag"), /not in kubelet.extraArgs/);
  });
});
