// Loads everything a command needs from one inventory: validated inventory, PKI, binary index
// and the plan. Only `create: true` callers (synth, certs) may create or reissue PKI material.
import * as path from "node:path";
import { BinaryIndex, openBinaries } from "./binaries/source";
import { loadInventory } from "./inventory/load";
import { Host, Inventory, InventoryIssue } from "./inventory/types";
import { readLedger, updateLedger } from "./inventory/ledger";
import { adminKubeconfig } from "./pki/kubeconfig";
import { EnsureOptions, Pki, PkiChange, ensurePki, issuePending, loadPki } from "./pki/store";
import { writeFileAtomic } from "./util/fs";
import { Plan, StepInstance, buildPlan, planInstance } from "./plan";
import { StepDef } from "./steps/types";
import { appliedResourcesOf } from "./state";

export interface Cluster {
  inv: Inventory;
  warnings: InventoryIssue[];
  pki: Pki;
  pkiChanges: PkiChange[];
  binaries: BinaryIndex;
  plan: Plan;
}

/**
 * `pki.defer` (the cdktf app): leaves to (re)issue get only their issuance records, and the
 * plan's files are rendered as triggers see them (records in place of leaves): only its triggers
 * are used. Otherwise the files are what the hosts would receive.
 */
export async function openCluster(configFile: string, opts: { create: boolean; pki?: EnsureOptions }): Promise<Cluster> {
  const { inventory: inv, warnings } = loadInventory(configFile);
  let pki: Pki;
  let identity: Pki;
  let pkiChanges: PkiChange[] = [];
  let removed: Host[];
  if (opts.create) {
    ({ pki, identity, changes: pkiChanges } = await ensurePki(inv, opts.pki));
    if (pki.leaves.has("admin")) writeAdminKubeconfig(inv, pki);
    removed = updateLedger(inv);
  } else {
    const loaded = loadPki(inv);
    ({ identity } = loaded);
    pki = loaded;
    removed = goneHosts(inv);
  }
  const binaries = openBinaries(inv);
  // Synthesis orders rolling chains by what is already applied.
  const applied = opts.create ? appliedResourcesOf(inv) : new Map<string, string[]>();
  const plan = buildPlan({ inv, pki: identity, binaries, gone: removed }, { applied, shipPki: opts.pki?.defer ? undefined : pki });
  return { inv, warnings, pki, pkiChanges, binaries, plan };
}

/** What a step process loads: its own instance only, from the PKI and binaries as they are (nothing created). */
export interface StepScope {
  inv: Inventory;
  binaries: BinaryIndex;
  inst: Omit<StepInstance, "dependsOn" | "firstBringUp">;
}

/**
 * Opens one (step, host) instance for `binkube step`. Undefined when the step does not run on
 * that host. Unlike openCluster it renders no other step and reads no state. The leaves the
 * instance ships that synth only recorded are issued here, after `expectHash` (which throws on
 * drift) has seen the planned instance (pki/issuance.ts).
 */
export async function openStepInstance(configFile: string, step: StepDef, hostName: string, opts: { expectHash?: (planned: StepScope["inst"]) => void } = {}): Promise<{ inv: Inventory; binaries: BinaryIndex; inst?: StepScope["inst"] }> {
  const { inventory: inv } = loadInventory(configFile);
  const binaries = openBinaries(inv);
  const pki = loadPki(inv);
  const ctx = { inv, pki: pki.identity, binaries, gone: goneHosts(inv) };
  // Rendered as triggers see it first: its hash, and (pki.used) which leaves it ships.
  const planned = planInstance(ctx, step, hostName);
  if (!planned) return { inv, binaries };
  opts.expectHash?.(planned); // a drifted plan fails before any key is made
  const issued = await issuePending(inv, pki.used);
  // The local admin.kubeconfig waits for its certificate (openCluster writes it when it exists).
  if (issued.includes("admin")) writeAdminKubeconfig(inv, pki);
  return { inv, binaries, inst: { ...planned, files: step.files({ ...ctx, pki }, planned.host) } };
}

/** Hosts in the ledger that left the inventory: the remove step's hosts. */
function goneHosts(inv: Inventory): Host[] {
  const names = new Set(inv.hosts.map((h) => h.name));
  return Object.values(readLedger(inv)).filter((h) => !names.has(h.name));
}

export function adminKubeconfigPath(inv: Inventory): string {
  return path.join(inv.baseDir, "admin.kubeconfig");
}

/** admin.kubeconfig beside the inventory, so `kubectl --kubeconfig …` works from this machine (one context per master: pki/kubeconfig.ts). */
function writeAdminKubeconfig(inv: Inventory, pki: Pki): void {
  writeFileAtomic(adminKubeconfigPath(inv), adminKubeconfig(inv, pki), 0o600);
}
