// The PKI's files on disk (pki/ beside the inventory): where each pair lives, reading one, writing
// one. Private keys are written 0600 through a temp file and rename.
import * as fs from "node:fs";
import * as path from "node:path";
import { Issued, parseIssued } from "./x509";
import { writeFileAtomic } from "../util/fs";
import { IssueRecord, certMatchesRecord, readRecord } from "./issuance";

export function readIf(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

export const certPath = (dir: string, name: string) => path.join(dir, `${name}.crt`);
export const keyPath = (dir: string, name: string) => path.join(dir, `${name}.key`);

/** A pair as it is on disk (for a leaf: whether or not it is the one its issuance record names). */
export function loadPair(dir: string, name: string): Issued | undefined {
  const c = readIf(certPath(dir, name));
  const k = readIf(keyPath(dir, name));
  if (!c || !k) return undefined;
  try {
    return parseIssued(c, k);
  } catch {
    return undefined;
  }
}

export function savePair(dir: string, name: string, issued: Issued): void {
  writeFileAtomic(keyPath(dir, name), issued.keyPem, 0o600);
  writeFileAtomic(certPath(dir, name), issued.certPem, 0o644);
}

/** A leaf's issuance record when the certificate on disk is not yet the one it names. */
export function pendingRecord(dir: string, name: string): IssueRecord | undefined {
  const rec = readRecord(dir, name);
  return rec && !certMatchesRecord(readIf(certPath(dir, name)), rec) ? rec : undefined;
}

/** The leaf as issued: on disk and the one its record names (undefined while pending or absent). */
export function currentLeaf(dir: string, name: string): Issued | undefined {
  return pendingRecord(dir, name) ? undefined : loadPair(dir, name);
}
