// Loads everything a command needs from one inventory: validated inventory, PKI, binary index
// and the plan. Only `create: true` callers (synth, certs) may create or reissue PKI material.
import * as path from "node:path";
import { BinaryIndex, openBinaries } from "./binaries/source";
import { loadInventory } from "./inventory/load";
import { Host, Inventory, InventoryIssue } from "./inventory/types";
import { readLedger, updateLedger } from "./inventory/ledger";
import { certKubeconfig } from "./pki/kubeconfig";
import { EnsureOptions, Pki, PkiChange, ensurePki, loadPki } from "./pki/store";
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

export async function openCluster(configFile: string, opts: { create: boolean; pki?: EnsureOptions }): Promise<Cluster> {
  const { inventory: inv, warnings } = loadInventory(configFile);
  let pki: Pki;
  let pkiChanges: PkiChange[] = [];
  let removed: Host[];
  if (opts.create) {
    ({ pki, changes: pkiChanges } = await ensurePki(inv, opts.pki));
    writeAdminKubeconfig(inv, pki);
    removed = updateLedger(inv);
  } else {
    pki = loadPki(inv);
    removed = goneHosts(inv);
  }
  const binaries = openBinaries(inv);
  // Synthesis orders rolling chains by what is already applied.
  const plan = buildPlan({ inv, pki, binaries, gone: removed }, { applied: opts.create ? appliedResourcesOf(inv) : new Map() });
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
 * that host. Unlike openCluster it renders no other step and reads no state.
 */
export function openStepInstance(configFile: string, step: StepDef, hostName: string): { inv: Inventory; binaries: BinaryIndex; inst?: StepScope["inst"] } {
  const { inventory: inv } = loadInventory(configFile);
  const binaries = openBinaries(inv);
  return { inv, binaries, inst: planInstance({ inv, pki: loadPki(inv), binaries, gone: goneHosts(inv) }, step, hostName) };
}

/** Hosts in the ledger that left the inventory: the remove step's hosts. */
function goneHosts(inv: Inventory): Host[] {
  const names = new Set(inv.hosts.map((h) => h.name));
  return Object.values(readLedger(inv)).filter((h) => !names.has(h.name));
}

export function adminKubeconfigPath(inv: Inventory): string {
  return path.join(inv.baseDir, "admin.kubeconfig");
}

/** admin.kubeconfig beside the inventory, so `kubectl --kubeconfig …` works from this machine. */
function writeAdminKubeconfig(inv: Inventory, pki: Pki): void {
  writeFileAtomic(adminKubeconfigPath(inv), certKubeconfig(inv, pki, "admin", "admin"), 0o600);
}
