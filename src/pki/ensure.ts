// Creates the PKI on first use, then keeps it: a certificate is reissued only when asked to, or
// when it is wrong for the current inventory; the reason is always reported.
import * as fs from "node:fs";
import * as path from "node:path";
import forge from "node-forge";
import { Inventory } from "../inventory/types";
import { CAS, CaName, LeafSpec, leafSpecs } from "./catalog";
import { Issued, KeyPair, certFacts, createCA, generateKeyPair, issueLeaf, keyMatchesCert, signedBy } from "./x509";
import { BinkubeError } from "../errors";
import { writeFileAtomic } from "../util/fs";
import { ensureEncryptionKeys } from "./encryption";
import { certMatchesRecord, newRecord, readRecord, specHash, writeRecord } from "./issuance";
import { loadPair, readIf, savePair } from "./disk";
import { lockPki } from "./lock";
import type { Pki } from "./load";

export interface PkiChange {
  name: string;
  action: "created" | "reissued";
  reason: string;
  /** Only its issuance record was written: the first step that ships it issues it. */
  deferred?: boolean;
}

export interface EnsureOptions {
  /** Leaf names to reissue, or "all" for every leaf certificate. */
  renew?: string[] | "all";
  now?: Date;
  /** Reissue a certificate that expires within this many days (0: only when expired). */
  renewWithinDays?: number;
  /** Leave leaf keys to the steps that ship them (the cdktf app): write issuance records only. */
  defer?: boolean;
}


/** Why an existing leaf must be reissued for this inventory, or undefined when it is fine. */
export function leafProblem(issued: Issued, spec: LeafSpec, ca: Issued, now: Date, renewWithinDays = 0): string | undefined {
  const f = certFacts(issued.cert);
  if (!keyMatchesCert(issued)) return "the key does not match the certificate";
  if (!signedBy(issued.cert, ca.cert)) return `not signed by the current ${spec.ca}`;
  if (f.cn !== spec.subject.cn) return `subject CN is ${f.cn}, expected ${spec.subject.cn}`;
  const wantO = [...(spec.subject.o ?? [])].sort().join(",");
  if ([...f.o].sort().join(",") !== wantO) return `subject O is [${f.o.join(",")}], expected [${wantO}]`;
  if ([...f.usages].sort().join(",") !== [...spec.usages].sort().join(",")) return `extended key usage is [${f.usages.join(",")}], expected [${spec.usages.join(",")}]`;
  const missing = [...spec.dnsNames.filter((n) => !f.dnsNames.includes(n)), ...spec.ips.filter((n) => !f.ips.includes(n))];
  if (missing.length > 0) return `SANs lack ${missing.join(", ")}`;
  if (f.notAfter.getTime() <= now.getTime()) return `expired on ${f.notAfter.toISOString()}`;
  if (renewWithinDays > 0 && f.notAfter.getTime() - now.getTime() < renewWithinDays * 86400000) return `expires within ${renewWithinDays} days`;
  return undefined;
}

/**
 * Loads the PKI, creating what is missing and reissuing what is wrong, and returns what changed.
 * With `defer`, a leaf to (re)issue gets only its issuance record here: the first step that ships
 * it issues it (issue.ts).
 */
export async function ensurePki(inv: Inventory, opts: EnsureOptions = {}): Promise<{ pki: Pki; changes: PkiChange[] }> {
  const dir = inv.pkiDir;
  const now = opts.now ?? new Date();
  const unlock = lockPki(dir);
  try {
    fs.chmodSync(dir, 0o700);
    const changes: PkiChange[] = [];
    const specs = leafSpecs(inv);
    const renew = new Set(opts.renew === "all" ? specs.map((s) => s.name) : opts.renew ?? []);
    for (const name of renew) {
      if (!specs.some((s) => s.name === name)) {
        throw new BinkubeError(`unknown certificate "${name}": renewable certificates are ${specs.map((s) => s.name).join(", ")}`);
      }
    }

    // Every key is generated at once (key generation is nearly all of a fresh PKI's time): a
    // missing leaf starts its key before its CA exists; the service-account key alongside.
    const caReady = new Map(
      CAS.map((spec) => [
        spec.name,
        (async (): Promise<Issued> => {
          const existing = loadPair(dir, spec.name);
          if (existing && keyMatchesCert(existing) && certFacts(existing.cert).notAfter > now) return existing;
          const created = await createCA(spec.cn, inv.certificates.caValidityDays, now);
          savePair(dir, spec.name, created);
          changes.push({ name: spec.name, action: existing ? "reissued" : "created", reason: existing ? "the CA was unusable (key mismatch or expired)" : "new cluster" });
          return created;
        })(),
      ]),
    );
    const serviceAccountReady = ensureServiceAccountKey(dir, changes);

    const onDisk = new Map(
      specs.map((spec) => {
        const existing = loadPair(dir, spec.name);
        const rec = readRecord(dir, spec.name);
        // The certificate on disk is the one its record names (or predates records).
        const current = existing && (!rec || certMatchesRecord(existing.certPem, rec)) ? existing : undefined;
        return [spec.name, { existing, rec, current }] as const;
      }),
    );
    // A leaf without a current certificate is issued now: its key starts before its CA exists.
    const keys = new Map<string, Promise<KeyPair>>();
    const keyFor = (spec: LeafSpec): Promise<KeyPair> => {
      const partner = spec.keyWith ? onDisk.get(spec.keyWith) : undefined;
      const owner = partner && (!partner.current || renew.has(spec.keyWith!)) ? spec.keyWith! : spec.name;
      if (!keys.has(owner)) keys.set(owner, generateKeyPair());
      return keys.get(owner)!;
    };
    await Promise.all(
      specs.map(async (spec) => {
        const { existing, current } = onDisk.get(spec.name)!;
        let rec = onDisk.get(spec.name)!.rec;
        const key = (current && !renew.has(spec.name)) || opts.defer ? undefined : keyFor(spec);
        key?.catch(() => undefined); // awaited below; not "unhandled" while the CA is awaited first
        const ca = await caReady.get(spec.ca)!;
        let reason: string | undefined;
        if (current) {
          reason = renew.has(spec.name) ? "renewal requested" : leafProblem(current, spec, ca, now, opts.renewWithinDays);
          if (!reason) return;
          rec = undefined;
        } else if (!rec || rec.issued || rec.spec !== specHash(spec, ca.certPem) || renew.has(spec.name)) {
          reason = existing ? (renew.has(spec.name) ? "renewal requested" : leafProblem(existing, spec, ca, now) ?? "its issuance record was for another certificate") : "new certificate";
          rec = undefined;
        } else {
          reason = "planned by an earlier synth, not issued yet";
        }
        if (!rec) {
          rec = newRecord(spec, ca.certPem);
          writeRecord(dir, spec.name, rec);
        }
        const action = existing ? "reissued" : "created";
        if (opts.defer) {
          changes.push({ name: spec.name, action, reason, deferred: true });
          return;
        }
        const issued = await issueLeaf(ca, { subject: spec.subject, usages: spec.usages, dnsNames: spec.dnsNames, ips: spec.ips, days: inv.certificates.validityDays, serial: rec.serial }, now, await key);
        savePair(dir, spec.name, issued);
        writeRecord(dir, spec.name, { ...rec, issued: true });
        changes.push({ name: spec.name, action, reason });
      }),
    );
    const cas = Object.fromEntries(await Promise.all([...caReady].map(async ([name, ready]) => [name, await ready] as const))) as Record<CaName, Issued>;
    const serviceAccount = await serviceAccountReady;
    const encryption = ensureEncryptionKeys(dir, now);
    if (encryption.created) changes.push({ name: "encryption-key", action: "created", reason: "Secrets encrypted at rest (aescbc)" });
    changes.sort((a, b) => a.name.localeCompare(b.name));
    return { pki: { dir, cas, serviceAccount, encryption: encryption.keys }, changes };
  } finally {
    unlock();
  }
}

async function ensureServiceAccountKey(dir: string, changes: PkiChange[]): Promise<Pki["serviceAccount"]> {
  const keyFile = path.join(dir, "sa.key");
  const pubFile = path.join(dir, "sa.pub");
  const existing = readIf(keyFile);
  if (existing) {
    const priv = forge.pki.privateKeyFromPem(existing) as forge.pki.rsa.PrivateKey;
    const publicKeyPem = forge.pki.publicKeyToPem(forge.pki.setRsaPublicKey(priv.n, priv.e));
    if (readIf(pubFile) !== publicKeyPem) writeFileAtomic(pubFile, publicKeyPem, 0o644);
    return { privateKeyPem: existing, publicKeyPem };
  }
  // A key pair of its own: the guide signs service-account tokens with the CA key.
  const keys = await generateKeyPair();
  const privateKeyPem = forge.pki.privateKeyToPem(keys.privateKey);
  const publicKeyPem = forge.pki.publicKeyToPem(keys.publicKey);
  writeFileAtomic(keyFile, privateKeyPem, 0o600);
  writeFileAtomic(pubFile, publicKeyPem, 0o644);
  changes.push({ name: "sa", action: "created", reason: "service-account signing key pair" });
  return { privateKeyPem, publicKeyPem };
}

