// Issuance records: a leaf certificate's identity before its key exists. When a leaf must be
// (re)issued, synthesis writes pki/<name>.issue (the serial it will carry, the spec it answers)
// and the key is generated when the first step that ships the leaf runs (`certs` commands issue
// at once). Triggers hash the record instead of the certificate, so they are the same before and
// after issuance: a first deploy's etcd does not wait for the keys of kubelets it has not reached,
// and the deploy after issuance changes nothing. A leaf without a record (issued by an earlier
// binkube) is its own identity, so upgrading binkube rolls nothing.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { LeafSpec } from "./catalog";
import { randomSerial } from "./x509";
import type { PemPair } from "./refs";
import { sha256 } from "../util/hash";
import { writeFileAtomic } from "../util/fs";

export interface IssueRecord {
  /** Hex serial the certificate is issued with: what ties the certificate on disk to this record. */
  serial: string;
  /** specHash of what the certificate must say (a pending record for another spec is replaced). */
  spec: string;
  /**
   * A certificate with this serial was issued. A record that was issued but no longer matches
   * the certificate on disk (replaced by hand) gets a new serial: a CA never reuses one.
   */
  issued?: boolean;
}

const recordPath = (dir: string, name: string) => path.join(dir, `${name}.issue`);

export function readRecord(dir: string, name: string): IssueRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(recordPath(dir, name), "utf8")) as Partial<IssueRecord>;
    return typeof r.serial === "string" && /^[0-9a-f]+$/.test(r.serial) && typeof r.spec === "string" ? { serial: r.serial, spec: r.spec, issued: r.issued === true } : undefined;
  } catch {
    return undefined;
  }
}

export function writeRecord(dir: string, name: string, rec: IssueRecord): void {
  writeFileAtomic(recordPath(dir, name), `${JSON.stringify(rec)}\n`, 0o644);
}

/** A new record for a spec under the CA as it is now. */
export function newRecord(spec: LeafSpec, caCertPem: string): IssueRecord {
  return { serial: randomSerial(), spec: specHash(spec, caCertPem) };
}

/** Everything a certificate says that the inventory decides, and the CA that signs it. */
export function specHash(spec: LeafSpec, caCertPem: string): string {
  const { subject, usages, dnsNames, ips } = spec;
  return sha256(JSON.stringify({ ca: sha256(caCertPem), cn: subject.cn, o: [...(subject.o ?? [])].sort(), usages: [...usages].sort(), dnsNames, ips }));
}

/** A hex serial as compared: lower case, no leading zeros (X.509 tools print them either way). */
export const normalSerial = (serial: string) => serial.toLowerCase().replace(/^0+/, "");

/** True when the certificate PEM is the one the record names (native parse: a step checks a few). */
export function certMatchesRecord(certPem: string | undefined, rec: IssueRecord): boolean {
  if (!certPem) return false;
  try {
    return normalSerial(new crypto.X509Certificate(certPem).serialNumber) === normalSerial(rec.serial);
  } catch {
    return false;
  }
}

/**
 * What a trigger sees of a recorded leaf: its name and serial in place of the PEMs, never key
 * material (load.ts LeafSource.identity). Never shipped: the runner resolves references to the leaf.
 */
export function identityOf(name: string, rec: IssueRecord): PemPair {
  return {
    certPem: `binkube issuance record: ${name} certificate, serial ${rec.serial}\n`,
    keyPem: `binkube issuance record: ${name} key, serial ${rec.serial}\n`,
  };
}
