// Read-only views of the PKI on disk for everything but its creation: the CAs, the service-account
// key and the encryption keys a step's files carry (read on first use: a step process renders one
// instance), and the leaves, which files carry only as references (refs.ts) resolved here.
import * as fs from "node:fs";
import * as path from "node:path";
import { Inventory } from "../inventory/types";
import { CAS, CaName, leafSpecs } from "./catalog";
import { Issued } from "./x509";
import { BinkubeError } from "../errors";
import { EncryptionKeys, readEncryptionKeys } from "./encryption";
import { identityOf, readRecord } from "./issuance";
import { certPath, currentLeaf, keyPath, loadPair, readIf } from "./disk";
import type { PemPair } from "./refs";

/** What step files are rendered with: never a leaf certificate (those are references). */
export interface Pki {
  dir: string;
  cas: Record<CaName, Issued>;
  serviceAccount: { privateKeyPem: string; publicKeyPem: string };
  /** aescbc keys for Secrets at rest (pki/encryption.ts). */
  encryption: EncryptionKeys;
}

const missing = (dir: string, what: string) => new BinkubeError(`${what} is missing in ${dir}: run \`npx cdktf synth\` (or \`binkube certs check\`) first so the PKI is created`);

/**
 * The PKI as it is on disk, never created or reissued here. Missing files fail at once (a stat
 * per file; a recorded leaf may be pending); an unreadable pair where it is used.
 */
export function loadPki(inv: Inventory): Pki {
  const dir = inv.pkiDir;
  const absent = [...CAS.map((spec) => spec.name), ...leafSpecs(inv).map((spec) => spec.name)].find((n) => (!fs.existsSync(certPath(dir, n)) || !fs.existsSync(keyPath(dir, n))) && !readRecord(dir, n));
  if (absent) throw missing(dir, `${absent}.crt/.key`);
  const cas = {} as Record<CaName, Issued>;
  for (const spec of CAS)
    lazyProperty(cas, spec.name, () => {
      const p = loadPair(dir, spec.name);
      if (!p) throw missing(dir, `${spec.name}.crt/.key`);
      return p;
    });
  const pki = { dir, cas } as Pki; // serviceAccount and encryption: lazy getters below
  lazyProperty(pki, "serviceAccount", () => {
    const privateKeyPem = readIf(path.join(dir, "sa.key"));
    const publicKeyPem = readIf(path.join(dir, "sa.pub"));
    if (!privateKeyPem || !publicKeyPem) throw missing(dir, "sa.key/sa.pub");
    return { privateKeyPem, publicKeyPem };
  });
  lazyProperty(pki, "encryption", () => {
    const encryption = readEncryptionKeys(dir);
    if (!encryption) throw missing(dir, "encryption-keys.json");
    return encryption;
  });
  return pki;
}

/** What references to leaves resolve to, read from pki/ once per leaf and kind. */
export class LeafSource {
  private readonly identities = new Map<string, PemPair>();
  private readonly pairs = new Map<string, PemPair>();
  constructor(readonly dir: string) {}

  /**
   * What a trigger hashes for a leaf: its issuance record (the same before and after issuance), or
   * for a leaf issued before records existed, the pair itself (upgrading binkube rolls nothing).
   */
  identity = (name: string): PemPair => {
    let id = this.identities.get(name);
    if (!id) {
      const rec = readRecord(this.dir, name);
      id = rec ? identityOf(name, rec) : loadPair(this.dir, name);
      if (!id) throw missing(this.dir, `${name}.crt/.key`);
      this.identities.set(name, id);
    }
    return id;
  };

  /** The leaf as a host receives it; fails while it is pending (LeafIssuer issues it first). */
  issued = (name: string): PemPair => {
    let pair = this.pairs.get(name);
    if (!pair) {
      const leaf = currentLeaf(this.dir, name);
      if (!leaf) throw new BinkubeError(`certificate ${name} is not issued yet (pki/${name}.issue is pending): run \`npx cdktf deploy\`, whose first step that ships it issues it`);
      pair = { certPem: leaf.certPem, keyPem: leaf.keyPem };
      this.pairs.set(name, pair);
    }
    return pair;
  };
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
