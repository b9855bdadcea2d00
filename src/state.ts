// What Terraform has applied so far, read (never written) from the local state beside the
// inventory. Only resource names and their recorded dependencies are used (never attributes).
import * as fs from "node:fs";
import * as path from "node:path";
import type { Inventory } from "./inventory/types";

export function statePath(inv: Inventory): string {
  return path.join(inv.baseDir, ".binkube", "terraform.tfstate");
}

interface StateFile {
  resources?: { mode?: string; name?: string; instances?: { dependencies?: string[] }[] }[];
}

/**
 * The managed resources in a state file (tainted ones too: they are still in Terraform's graph)
 * with the names of the resources each was recorded to depend on. Empty when there is no state.
 */
export function appliedResources(file: string): Map<string, string[]> {
  let state: StateFile;
  try {
    state = JSON.parse(fs.readFileSync(file, "utf8")) as StateFile;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw new Error(`cannot read Terraform state ${file}: ${(e as Error).message}`);
  }
  const applied = new Map<string, string[]>();
  for (const r of state.resources ?? []) {
    if (r.mode !== "managed" || !r.name) continue;
    const deps = (r.instances ?? []).flatMap((i) => i.dependencies ?? []).map((d) => d.slice(d.lastIndexOf(".") + 1));
    applied.set(r.name, [...new Set(deps)]);
  }
  return applied;
}
