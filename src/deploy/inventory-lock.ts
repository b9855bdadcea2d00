// One deploy of an inventory at a time. Two `cdktf deploy` of the same inventory would run every
// step twice, race on pki/ and the ledger, and rewrite the stack under a running Terraform; the
// second is refused at once, naming the first. The lock is held in the name of the cdktf command
// (cli-process.ts): it ends with that command however it ends, so there is nothing to clean up.
import * as fs from "node:fs";
import * as path from "node:path";
import { BinkubeError } from "../errors";
import { Owner } from "./cli-process";
import { alive, claim, readHolder } from "./owned-lock";

export interface LockRecord extends Owner {
  inventory: string;
  /** ISO time the owner took the lock. */
  since: string;
}

export const lockFile = (stateDir: string) => path.join(stateDir, "deploy.lock");

/** The live holder of an inventory's deploy lock, if any. */
export function lockHolder(stateDir: string): LockRecord | undefined {
  const r = readHolder<LockRecord>(lockFile(stateDir));
  return alive(r) ? r : undefined;
}

/**
 * Takes the lock for `owner`, or throws naming the live holder. Taking it again for the same
 * owner is a no-op (one cdktf command may synthesize more than once).
 */
export function takeDeployLock(stateDir: string, inventory: string, owner: Owner, now = new Date()): void {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = lockFile(stateDir);
  const held = claim<LockRecord>(file, { ...owner, inventory, since: now.toISOString() });
  if (!held) return;
  const ago = Math.max(0, Math.round((now.getTime() - Date.parse(held.since)) / 1000));
  throw new BinkubeError(
    `another cdktf command is working on ${inventory}: \`${held.command}\` (pid ${held.pid}, started ${ago} s ago) holds ${file}. ` +
      `Wait for it to finish, or stop it; two runs at once would run every step twice`,
  );
}
