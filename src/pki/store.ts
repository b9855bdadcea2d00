// The PKI on disk (pki/ beside the inventory): created on first use, then kept. A certificate is
// reissued only when asked to, or when it is wrong for the current inventory; the reason is
// always reported. Private keys are written 0600 through a temp file and rename.
import * as fs from "node:fs";
import * as path from "node:path";
import forge from "node-forge";
import { Inventory } from "../inventory/types";
import { CAS, CaName, LeafSpec, leafSpecs } from "./catalog";
import { Issued, KeyPair, certFacts, createCA, generateKeyPair, issueLeaf, keyMatchesCert, parseIssued, signedBy } from "./x509";
import { BinkubeError } from "../errors";
import { processAlive, writeFileAtomic } from "../util/fs";
import { EncryptionKeys, ensureEncryptionKeys, readEncryptionKeys } from "./encryption";
import { IssueRecord, certMatchesRecord, identityOf, newRecord, readRecord, specHash, writeRecord } from "./issuance";
import { sleep } from "../util/sleep";

export interface Pki {
  dir: string;
  cas: Record<CaName, Issued>;
  leaves: Map<string, Issued>;
  serviceAccount: { privateKeyPem: string; publicKeyPem: string };
  /** aescbc keys for Secrets at rest (pki/encryption.ts). */
  encryption: EncryptionKeys;
}

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


function readIf(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

const certPath = (dir: string, name: string) => path.join(dir, `${name}.crt`);
const keyPath = (dir: string, name: string) => path.join(dir, `${name}.key`);

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

/** A leaf's issuance record when the certificate on disk is not yet the one it names. */
function pendingRecord(dir: string, name: string): IssueRecord | undefined {
  const rec = readRecord(dir, name);
  return rec && !certMatchesRecord(readIf(certPath(dir, name)), rec) ? rec : undefined;
}

function savePair(dir: string, name: string, issued: Issued): void {
  writeFileAtomic(keyPath(dir, name), issued.keyPem, 0o600);
  writeFileAtomic(certPath(dir, name), issued.certPem, 0o644);
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
 * One attempt at the PKI lock (a directory holding its owner's pid; a dead owner's is taken over):
 * the release function, or undefined while a live process holds it (its pid for the error).
 */
function tryLock(dir: string): { unlock?: () => void; holder: number } {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lockDir = path.join(dir, ".lock");
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      fs.writeFileSync(path.join(lockDir, "pid"), String(process.pid));
      return { unlock: () => fs.rmSync(lockDir, { recursive: true, force: true }), holder: process.pid };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = Number(readIf(path.join(lockDir, "pid")));
      if (holder && !processAlive(holder)) {
        fs.rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      return { holder };
    }
  }
}

const lockBusy = (dir: string, holder: number) => new BinkubeError(`${path.join(dir, ".lock")} is held by process ${holder}: another binkube is writing the PKI; wait for it or remove the directory if that process is gone`);

/** The PKI lock for a one-shot process (synth, certs, kubeconfig): waits by blocking, up to 60 s. */
export function lockPki(dir: string): () => void {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { unlock, holder } = tryLock(dir);
    if (unlock) return unlock;
    if (Date.now() > deadline) throw lockBusy(dir, holder);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
}

/**
 * The PKI lock for the step server, where runs share one event loop: it waits without blocking,
 * and runs of this process take turns first (the lock directory cannot tell them apart).
 */
let localTurn: Promise<unknown> = Promise.resolve();
async function lockAsync(dir: string): Promise<() => void> {
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const before = localTurn;
  localTurn = before.then(() => mine);
  await before;
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { unlock, holder } = tryLock(dir);
      if (unlock)
        return () => {
          unlock();
          release();
        };
      if (Date.now() > deadline) throw lockBusy(dir, holder);
      await sleep(50);
    }
  } catch (e) {
    release();
    throw e;
  }
}

/**
 * Loads the PKI, creating what is missing and reissuing what is wrong. Returns what changed, and
 * the PKI as triggers see it (`identity`: a recorded leaf is its issuance record). With `defer`,
 * a leaf to (re)issue gets only its record here: it is absent from `pki.leaves` until the first
 * step that ships it issues it (issuePending).
 */
export async function ensurePki(inv: Inventory, opts: EnsureOptions = {}): Promise<{ pki: Pki; identity: Pki; changes: PkiChange[] }> {
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

    const leaves = new Map<string, Issued>();
    const identity = new Map<string, Issued>();
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
          if (!reason) {
            leaves.set(spec.name, current);
            identity.set(spec.name, rec ? identityOf(spec.name, rec) : current);
            return;
          }
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
        identity.set(spec.name, identityOf(spec.name, rec));
        const action = existing ? "reissued" : "created";
        if (opts.defer) {
          changes.push({ name: spec.name, action, reason, deferred: true });
          return;
        }
        const issued = await issueLeaf(ca, { subject: spec.subject, usages: spec.usages, dnsNames: spec.dnsNames, ips: spec.ips, days: inv.certificates.validityDays, serial: rec.serial }, now, await key);
        savePair(dir, spec.name, issued);
        writeRecord(dir, spec.name, { ...rec, issued: true });
        leaves.set(spec.name, issued);
        changes.push({ name: spec.name, action, reason });
      }),
    );
    const cas = Object.fromEntries(await Promise.all([...caReady].map(async ([name, ready]) => [name, await ready] as const))) as Record<CaName, Issued>;
    const serviceAccount = await serviceAccountReady;
    const encryption = ensureEncryptionKeys(dir, now);
    if (encryption.created) changes.push({ name: "encryption-key", action: "created", reason: "Secrets encrypted at rest (aescbc)" });
    changes.sort((a, b) => a.name.localeCompare(b.name));
    const pki: Pki = { dir, cas, leaves, serviceAccount, encryption: encryption.keys };
    return { pki, identity: { ...pki, leaves: identity }, changes };
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

/**
 * Read-only load for the step runner: the PKI as it is on disk, never created or reissued here
 * (issuePending issues what synth recorded). Each CA, leaf pair and key is read and parsed on
 * first use: a step process renders one instance, which ships a few of them. `identity` is the
 * PKI as triggers see it (as ensurePki returns it); `used` collects the leaves read through it,
 * so a render through `identity` tells which leaves an instance ships. A recorded leaf not issued
 * yet is absent from `leaves`. Missing files fail here; an unreadable pair where it is used.
 */
export function loadPki(inv: Inventory): Pki & { identity: Pki; used: Set<string> } {
  const dir = inv.pkiDir;
  const fail = (what: string) => new BinkubeError(`${what} is missing in ${dir}: run \`npx cdktf synth\` (or \`binkube certs check\`) first so the PKI is created`);
  const pair = (name: string): Issued => {
    const p = loadPair(dir, name);
    if (!p) throw fail(`${name}.crt/.key`);
    return p;
  };
  const leafNames = leafSpecs(inv).map((spec) => spec.name);
  // Fail at once when pki/ was never created (a stat per file); a recorded leaf may be pending.
  const absent = [...CAS.map((spec) => spec.name), ...leafNames].find((n) => (!fs.existsSync(certPath(dir, n)) || !fs.existsSync(keyPath(dir, n))) && !readRecord(dir, n));
  if (absent) throw fail(`${absent}.crt/.key`);
  const cas = {} as Record<CaName, Issued>;
  for (const spec of CAS) lazyProperty(cas, spec.name, () => pair(spec.name));
  const leaves = new LazyMap(leafNames, (name) => (pendingRecord(dir, name) ? undefined : pair(name)));
  const used = new Set<string>();
  const identityLeaves = new LazyMap(leafNames, (name) => {
    used.add(name);
    const rec = readRecord(dir, name);
    return rec ? identityOf(name, rec) : pair(name);
  });
  const pki = { dir, cas, leaves, used } as Partial<Pki & { identity: Pki; used: Set<string> }> as Pki & { identity: Pki; used: Set<string> }; // the keys below are lazy getters
  lazyProperty(pki, "serviceAccount", () => {
    const privateKeyPem = readIf(path.join(dir, "sa.key"));
    const publicKeyPem = readIf(path.join(dir, "sa.pub"));
    if (!privateKeyPem || !publicKeyPem) throw fail("sa.key/sa.pub");
    return { privateKeyPem, publicKeyPem };
  });
  lazyProperty(pki, "encryption", () => {
    const encryption = readEncryptionKeys(dir);
    if (!encryption) throw fail("encryption-keys.json");
    return encryption;
  });
  // The same PKI but for its leaves (prototype: the lazy CA and key getters are shared).
  pki.identity = Object.create(pki, { leaves: { value: identityLeaves, enumerable: true } }) as Pki;
  return pki;
}

/** Keys being generated in this process for a pending record ("dir name serial"): one per record. */
const keysInFlight = new Map<string, Promise<KeyPair>>();

/**
 * Issues the recorded leaves among `names` that are not issued yet. Keys are generated first,
 * outside the PKI lock and in parallel (the slow part: the etcd members of one deploy make theirs
 * at once); runs of one step server share a record's key. Under the lock, each leaf is checked
 * again (another process may have issued it: it is then read, not issued twice), signed and
 * saved. Returns the names issued here.
 */
export async function issuePending(inv: Inventory, names: Iterable<string>, now = new Date()): Promise<string[]> {
  const dir = inv.pkiDir;
  const specs = new Map(leafSpecs(inv).map((s) => [s.name, s]));
  const records = new Map<string, IssueRecord>();
  for (const name of new Set(names)) {
    const rec = pendingRecord(dir, name);
    if (rec) records.set(name, rec);
  }
  const keys = new Map<string, Promise<KeyPair>>();
  for (const name of records.keys()) {
    // keyWith (catalog.ts): issued together, an etcd member's peer certificate takes its serving certificate's key
    const partner = specs.get(name)?.keyWith;
    const owner = partner && records.has(partner) ? partner : name;
    const id = `${dir} ${owner} ${records.get(owner)!.serial}`;
    let key = keysInFlight.get(id);
    if (!key) {
      key = generateKeyPair();
      keysInFlight.set(id, key);
      const forget = () => keysInFlight.delete(id);
      key.then(forget, forget);
    }
    keys.set(name, key);
  }
  if (keys.size === 0) return [];
  const ready = new Map<string, KeyPair>();
  for (const [name, key] of keys) ready.set(name, await key);
  const unlock = await lockAsync(dir);
  try {
    const issued: string[] = [];
    for (const [name, key] of ready) {
      const rec = pendingRecord(dir, name); // again, under the lock
      const spec = specs.get(name);
      if (!rec || !spec) continue;
      if (rec.issued) throw new BinkubeError(`certificate ${name}: pki/${name}.crt is not the certificate binkube issued (serial ${rec.serial}); run \`npx cdktf deploy\` again so synth reissues it`);
      const ca = loadPair(dir, spec.ca);
      if (!ca || specHash(spec, ca.certPem) !== rec.spec) throw new BinkubeError(`certificate ${name}: its issuance record (pki/${name}.issue) was written for another ${spec.ca} or inventory; run \`npx cdktf deploy\` again so synth records it anew`);
      const leafIssued = await issueLeaf(ca, { subject: spec.subject, usages: spec.usages, dnsNames: spec.dnsNames, ips: spec.ips, days: inv.certificates.validityDays, serial: rec.serial }, now, key);
      savePair(dir, name, leafIssued);
      writeRecord(dir, name, { ...rec, issued: true });
      issued.push(name);
    }
    return issued.sort();
  } finally {
    unlock();
  }
}

/** obj[key] computed on first read, then kept. */
function lazyProperty<T extends object, K extends keyof T>(obj: T, key: K, load: () => T[K]): void {
  Object.defineProperty(obj, key, {
    enumerable: true,
    configurable: true,
    get: () => {
      const value = load();
      Object.defineProperty(obj, key, { value, enumerable: true });
      return value;
    },
  });
}

/** A Map over known keys whose values load on first get; iterating loads them all. */
class LazyMap<V> extends Map<string, V> {
  constructor(
    private readonly names: string[],
    private readonly load: (name: string) => V | undefined,
  ) {
    super();
  }
  override get(name: string): V | undefined {
    if (!super.has(name) && this.names.includes(name)) {
      const v = this.load(name);
      if (v !== undefined) super.set(name, v);
    }
    return super.get(name);
  }
  override has(name: string): boolean {
    return this.get(name) !== undefined;
  }
  override get size(): number {
    this.all();
    return super.size;
  }
  private all(): void {
    for (const n of this.names) this.get(n);
  }
  override entries(): MapIterator<[string, V]> {
    this.all();
    return super.entries();
  }
  override values(): MapIterator<V> {
    this.all();
    return super.values();
  }
  override keys(): MapIterator<string> {
    this.all();
    return super.keys();
  }
  override [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }
  override forEach(fn: (value: V, key: string, map: Map<string, V>) => void, thisArg?: unknown): void {
    this.all();
    super.forEach(fn, thisArg);
  }
}

export function leaf(pki: Pki, name: string): Issued {
  const l = pki.leaves.get(name);
  if (!l) throw new BinkubeError(`certificate ${name} is not in the PKI`);
  return l;
}
