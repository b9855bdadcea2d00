// Loads everything a command needs from one inventory: validated inventory, PKI, binary index
// and the plan. Only `create: true` callers (synth, certs) may create or reissue PKI material.
import * as path from "node:path";
import { BinaryIndex, openBinaries } from "./binaries/source";
import { loadInventory } from "./inventory/load";
import { Host, Inventory, InventoryIssue } from "./inventory/types";
import { readLedger, updateLedger } from "./inventory/ledger";
import { adminKubeconfig } from "./pki/kubeconfig";
import { EnsureOptions, PkiChange, ensurePki } from "./pki/ensure";
import { LeafSource, Pki, loadPki } from "./pki/load";
import { LeafIssuer } from "./pki/issue";
import { currentLeaf } from "./pki/disk";
import { resolveRefs } from "./pki/refs";
import { writeFileAtomic } from "./util/fs";
import { Plan, StepInstance, buildPlan, certificatesIn, planInstance, shippedFiles } from "./plan";
import { STEPS } from "./steps";
import { StepDef } from "./steps/types";
import { appliedResourcesOf } from "./state";

export interface Cluster {
  inv: Inventory;
  warnings: InventoryIssue[];
  pki: Pki;
  /** The leaf certificates, which the plan's files reference (pki/refs.ts). */
  leaves: LeafSource;
  pkiChanges: PkiChange[];
  binaries: BinaryIndex;
  plan: Plan;
}

/**
 * `pki.defer` (the cdktf app): leaves to (re)issue get only their issuance records, and the
 * plan's files keep their leaf references (pki/refs.ts): only its triggers are used. Otherwise
 * the files are what the hosts would receive.
 */
export async function openCluster(configFile: string, opts: { create: boolean; pki?: EnsureOptions }): Promise<Cluster> {
  const { inventory: inv, warnings } = loadInventory(configFile);
  let pki: Pki;
  let pkiChanges: PkiChange[] = [];
  let removed: Host[];
  const leaves = new LeafSource(inv.pkiDir);
  if (opts.create) {
    ({ pki, changes: pkiChanges } = await ensurePki(inv, opts.pki));
    if (currentLeaf(inv.pkiDir, "admin")) writeAdminKubeconfig(inv, pki, leaves);
    removed = updateLedger(inv);
  } else {
    pki = loadPki(inv);
    removed = goneHosts(inv);
  }
  const binaries = openBinaries(inv);
  // Synthesis orders rolling chains by what is already applied.
  const applied = opts.create ? appliedResourcesOf(inv) : new Map<string, string[]>();
  const plan = buildPlan({ inv, pki, binaries, gone: removed, leafIdentity: leaves.identity }, { applied });
  if (!opts.pki?.defer) plan.instances = plan.instances.map((i) => ({ ...i, files: shippedFiles(i.files, leaves.issued) }));
  return { inv, warnings, pki, leaves, pkiChanges, binaries, plan };
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
 * instance references that synth only recorded are issued here, after `expectHash` (which throws
 * on drift) has seen the planned instance (pki/issuance.ts), and its files resolved to them.
 * `issuer`: the process's (a step server's runs share keys being generated).
 */
export async function openStepInstance(configFile: string, step: StepDef, hostName: string, opts: { expectHash?: (planned: StepScope["inst"]) => void; issuer?: LeafIssuer } = {}): Promise<{ inv: Inventory; binaries: BinaryIndex; inst?: StepScope["inst"] }> {
  const { inventory: inv } = loadInventory(configFile);
  const binaries = openBinaries(inv);
  const pki = loadPki(inv);
  const leaves = new LeafSource(inv.pkiDir);
  const planned = planInstance({ inv, pki, binaries, gone: goneHosts(inv), leafIdentity: leaves.identity }, step, hostName);
  if (!planned) return { inv, binaries };
  opts.expectHash?.(planned); // a drifted plan fails before any key is made
  const issued = await (opts.issuer ?? new LeafIssuer()).issuePending(inv, certificatesIn(planned.files));
  // The local admin.kubeconfig waits for its certificate (openCluster writes it when it exists).
  if (issued.includes("admin")) writeAdminKubeconfig(inv, pki, leaves);
  return { inv, binaries, inst: { ...planned, files: shippedFiles(planned.files, leaves.issued) } };
}

/** A release binary one of a host's steps ships there (runner/stage.ts sends them ahead). */
export interface HostBinary {
  /** where its step puts it */
  path: string;
  localPath: string;
  /** the file's sha256 when the index knows it (a directory source); else hash localPath */
  sha256?: string;
}

/**
 * The release binaries every step of `hostName` ships, in bring-up order (STEPS is ordered by
 * the steps' deps), present on this machine. Renders the host's instances; issues nothing.
 */
export function hostBinaries(configFile: string, hostName: string): { inv: Inventory; host?: Host; files: HostBinary[] } {
  const { inventory: inv } = loadInventory(configFile);
  const binaries = openBinaries(inv);
  const ctx = { inv, pki: loadPki(inv), binaries, gone: goneHosts(inv), leafIdentity: new LeafSource(inv.pkiDir).identity };
  const host = inv.hosts.find((h) => h.name === hostName);
  const files: HostBinary[] = [];
  if (!host) return { inv, files };
  // planInstance is undefined for a step that does not run on the host
  for (const step of STEPS) {
    for (const f of planInstance(ctx, step, hostName)?.files ?? []) {
      if (f.binary === undefined) continue;
      const info = binaries.get(f.binary);
      if (!info.present || !info.localPath) continue;
      files.push({ path: f.path, localPath: info.localPath, ...(info.url ? {} : { sha256: info.hash }) });
    }
  }
  return { inv, host, files };
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
function writeAdminKubeconfig(inv: Inventory, pki: Pki, leaves: LeafSource): void {
  writeFileAtomic(adminKubeconfigPath(inv), resolveRefs(adminKubeconfig(inv, pki), leaves.issued), 0o600);
}
