// What Terraform has applied so far, read (never written) from the state: the local file beside
// the inventory, or the PostgreSQL backend (through psql, with PG_CONN_STR). Only resource names
// and their recorded dependencies are used (never attributes).
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { BinkubeError } from "./errors";
import type { Inventory } from "./inventory/types";

export function statePath(inv: Inventory): string {
  return path.join(inv.baseDir, ".binkube", "terraform.tfstate");
}

interface StateFile {
  resources?: { mode?: string; name?: string; instances?: { dependencies?: string[] }[] }[];
}

/** The connection string of the pg backend: from the environment only (Terraform reads the same variable). */
export function pgConnStr(): string {
  const c = process.env.PG_CONN_STR;
  if (!c) throw new BinkubeError("state.backend is pg, but PG_CONN_STR is not set: export PG_CONN_STR=postgres://USER@HOST/DB?sslmode=require (binkube and Terraform both read it; it is never written to cdktf.out)");
  return c;
}

/** The state JSON Terraform's pg backend keeps for the default workspace; undefined before the first apply. */
function readPgState(schema: string): string | undefined {
  try {
    const out = execFileSync("psql", [pgConnStr(), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", `SELECT data FROM "${schema}".states WHERE name = 'default'`], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    return out.trim() || undefined;
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === "ENOENT") throw new BinkubeError("state.backend is pg: binkube reads the state with psql, which is not installed here (apt-get install postgresql-client)");
    if (/does not exist/.test(err.stderr ?? "")) return undefined; // no apply yet: the backend creates its schema then
    throw new BinkubeError(`cannot read the Terraform state from PostgreSQL (schema ${schema}): ${(err.stderr ?? err.message).trim().split("\n")[0]}. Check PG_CONN_STR and that the server answers`);
  }
}

/** The state of an inventory, wherever its backend keeps it. */
export function appliedResourcesOf(inv: Inventory): Map<string, string[]> {
  if (inv.state.backend === "pg") {
    const text = readPgState(inv.state.schema);
    return text ? appliedFromState(JSON.parse(text) as StateFile) : new Map();
  }
  return appliedResources(statePath(inv));
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
  return appliedFromState(state);
}

function appliedFromState(state: StateFile): Map<string, string[]> {
  const applied = new Map<string, string[]>();
  for (const r of state.resources ?? []) {
    if (r.mode !== "managed" || !r.name) continue;
    const deps = (r.instances ?? []).flatMap((i) => i.dependencies ?? []).map((d) => d.slice(d.lastIndexOf(".") + 1));
    applied.set(r.name, [...new Set(deps)]);
  }
  return applied;
}
