// Issues the leaves synthesis only recorded (issuance.ts), when the first step that ships one runs.
import { Inventory } from "../inventory/types";
import { leafSpecs } from "./catalog";
import { KeyPair, generateKeyPair, issueLeaf } from "./x509";
import { BinkubeError } from "../errors";
import { IssueRecord, specHash, writeRecord } from "./issuance";
import { loadPair, pendingRecord, savePair } from "./disk";
import { AsyncPkiLock } from "./lock";

/**
 * One per process that runs steps: its runs share a pending record's key while it is generated
 * ("dir name serial" → key) and take turns at the PKI lock.
 */
export class LeafIssuer {
  private readonly keysInFlight = new Map<string, Promise<KeyPair>>();
  private readonly lock = new AsyncPkiLock();

  /**
   * Issues the recorded leaves among `names` that are not issued yet. Keys are generated first,
   * outside the PKI lock and in parallel (the slow part: the etcd members of one deploy make
   * theirs at once). Under the lock, each leaf is checked again (another process may have issued
   * it: it is then read, not issued twice), signed and saved. Returns the names issued here.
   */
  async issuePending(inv: Inventory, names: Iterable<string>, now = new Date()): Promise<string[]> {
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
      keys.set(name, this.keyFor(`${dir} ${owner} ${records.get(owner)!.serial}`));
    }
    if (keys.size === 0) return [];
    const ready = new Map<string, KeyPair>();
    for (const [name, key] of keys) ready.set(name, await key);
    const unlock = await this.lock.acquire(dir);
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

  private keyFor(id: string): Promise<KeyPair> {
    let key = this.keysInFlight.get(id);
    if (!key) {
      key = generateKeyPair();
      this.keysInFlight.set(id, key);
      const forget = () => this.keysInFlight.delete(id);
      key.then(forget, forget);
    }
    return key;
  }
}
