// pki/users.json: every scoped credential binkube issued (who, which group, which role where,
// each certificate's serial and validity) and when it was revoked. No key material: a user's key
// exists only in the kubeconfig handed out. Kept beside the CA that signed them, and backed up with
// it: a certificate cannot be revoked in v1.17, so this is the record of what still authenticates.
import * as fs from "node:fs";
import * as path from "node:path";
import { BinkubeError } from "../errors";
import { lockPki } from "../pki/lock";
import { writeFileAtomic } from "../util/fs";

export interface IssuedCert {
  serial: string;
  /** The certificate's O (its group), when it has one. */
  group?: string;
  /** What the user was granted when it was issued. */
  role: string;
  namespace?: string;
  notBefore: string;
  notAfter: string;
  issuedAt: string;
}

export interface UserRecord {
  name: string;
  /** The current grant (the binding in the cluster). */
  role: string;
  namespace?: string;
  group?: string;
  createdAt: string;
  revokedAt?: string;
  /** Oldest first. */
  certificates: IssuedCert[];
}

export interface AccessLedger {
  version: 1;
  users: Record<string, UserRecord>;
}

export const ledgerPath = (pkiDir: string): string => path.join(pkiDir, "users.json");

export function readAccessLedger(pkiDir: string): AccessLedger {
  const file = ledgerPath(pkiDir);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return { version: 1, users: {} };
  }
  try {
    const l = JSON.parse(text) as AccessLedger;
    if (l.version !== 1 || typeof l.users !== "object" || l.users === null) throw new Error(`version ${String(l.version)}`);
    return l;
  } catch (e) {
    throw new BinkubeError(`${file} is not a binkube access ledger (${(e as Error).message})`, { fix: "restore it from the backup of pki/; binkube will not overwrite it" });
  }
}

/** Reads, changes and writes the ledger under the PKI lock (two commands at once lose nothing). */
export function updateAccessLedger(pkiDir: string, change: (l: AccessLedger) => void): AccessLedger {
  const unlock = lockPki(pkiDir);
  try {
    const l = readAccessLedger(pkiDir);
    change(l);
    writeFileAtomic(ledgerPath(pkiDir), JSON.stringify(l, null, 2) + "\n", 0o644);
    return l;
  } finally {
    unlock();
  }
}

/** When the user's last certificate stops authenticating. */
export function validUntil(u: UserRecord): Date {
  return new Date(Math.max(...u.certificates.map((c) => Date.parse(c.notAfter))));
}

/** The certificates that still authenticate at NOW. */
export function liveCertificates(u: UserRecord, now: Date): IssuedCert[] {
  return u.certificates.filter((c) => Date.parse(c.notAfter) > now.getTime());
}

/** The newest certificate. */
export function latestCertificate(u: UserRecord): IssuedCert {
  return u.certificates[u.certificates.length - 1]!;
}
