// Secrets encrypted at rest (CIS 1.2.33/1.2.34): aescbc keys in pki/encryption-keys.json (0600;
// never in Terraform state, cdktf.out or logs: triggers carry only key names), rendered into the
// apiservers' EncryptionConfiguration. The first key writes; every listed key reads.
//
// Rotation keeps old Secrets readable on every apiserver throughout, in three deploys:
//   1. a new key is added as a reader (every apiserver learns it before any writes with it);
//   2. the new key becomes the writer (then every Secret is rewritten with it);
//   3. the old key is dropped.
// `binkube encryption rotate` advances one phase, and refuses to while the last one is not deployed.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { BinkubeError } from "../errors";
import { writeFileAtomic } from "../util/fs";

export interface EncryptionKey {
  name: string;
  /** base64 of 32 random bytes (AES-256) */
  secret: string;
}

export interface EncryptionKeys {
  /** Writer first, then readers. */
  keys: EncryptionKey[];
}

const FILE = "encryption-keys.json";
/** What the last successful bootstrap step applied (key names only): rotation waits for it. */
const APPLIED = "encryption-applied.json";

export function encryptionKeysPath(pkiDir: string): string {
  return path.join(pkiDir, FILE);
}

function newKey(now: Date): EncryptionKey {
  return { name: `key-${now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}`, secret: crypto.randomBytes(32).toString("base64") };
}

export function readEncryptionKeys(pkiDir: string): EncryptionKeys | undefined {
  try {
    const k = JSON.parse(fs.readFileSync(encryptionKeysPath(pkiDir), "utf8")) as EncryptionKeys;
    if (!Array.isArray(k.keys) || k.keys.length === 0 || !k.keys.every((x) => /^key-[0-9TZ]+$/.test(x.name) && Buffer.from(x.secret, "base64").length === 32)) {
      throw new BinkubeError(`${encryptionKeysPath(pkiDir)} is not a list of 32-byte aescbc keys`, { fix: "restore it from your backup of pki/ (without it no Secret can be read)" });
    }
    return k;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

function write(pkiDir: string, k: EncryptionKeys): void {
  writeFileAtomic(encryptionKeysPath(pkiDir), JSON.stringify(k, null, 2) + "\n", 0o600);
}

/** Creates the first key when there is none. Returns whether it did. */
export function ensureEncryptionKeys(pkiDir: string, now = new Date()): { keys: EncryptionKeys; created: boolean } {
  const existing = readEncryptionKeys(pkiDir);
  if (existing) return { keys: existing, created: false };
  const keys = { keys: [newKey(now)] };
  write(pkiDir, keys);
  return { keys, created: true };
}

/** The apiserver's --encryption-provider-config. */
export function encryptionConfig(k: EncryptionKeys): string {
  return JSON.stringify({
    apiVersion: "apiserver.config.k8s.io/v1",
    kind: "EncryptionConfiguration",
    resources: [{ resources: ["secrets"], providers: [{ aescbc: { keys: k.keys.map((x) => ({ name: x.name, secret: x.secret })) } }, { identity: {} }] }],
  }, null, 2) + "\n";
}

/** Key names, writer first: what triggers and the applied marker hold (never a secret). */
export function keyNames(k: EncryptionKeys): string {
  return k.keys.map((x) => x.name).join(",");
}

export function readApplied(pkiDir: string): string | undefined {
  try {
    return (JSON.parse(fs.readFileSync(path.join(pkiDir, APPLIED), "utf8")) as { keys: string }).keys;
  } catch {
    return undefined;
  }
}

export function recordApplied(pkiDir: string, names: string): void {
  writeFileAtomic(path.join(pkiDir, APPLIED), JSON.stringify({ keys: names }) + "\n", 0o600);
}

/** One rotation phase; returns what was done and what the operator runs next. */
export function rotateEncryptionKey(pkiDir: string, now = new Date()): string {
  const k = readEncryptionKeys(pkiDir);
  if (!k) throw new BinkubeError("no encryption keys yet", { fix: "run `npx cdktf deploy` first: synthesis creates the first key" });
  if (readApplied(pkiDir) !== keyNames(k)) {
    throw new BinkubeError(`the last key change (${keyNames(k)}) is not deployed yet`, { fix: "run `npx cdktf deploy` and let it finish, then rotate again" });
  }
  if (k.keys.length === 1) {
    const added = newKey(now);
    write(pkiDir, { keys: [k.keys[0]!, added] });
    return `phase 1/3: ${added.name} added as a reader; run \`npx cdktf deploy\` (every apiserver learns it), then \`binkube encryption rotate\` again`;
  }
  const [writer, reader] = k.keys as [EncryptionKey, EncryptionKey];
  if (writer.name < reader.name) {
    write(pkiDir, { keys: [reader, writer] });
    return `phase 2/3: ${reader.name} now writes; run \`npx cdktf deploy\` (apiservers roll, then every Secret is rewritten with it), then \`binkube encryption rotate\` again`;
  }
  write(pkiDir, { keys: [writer] });
  return `phase 3/3: ${reader.name} dropped; run \`npx cdktf deploy\` to remove it from the apiservers`;
}
