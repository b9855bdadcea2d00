/**
 * Host key verification: OpenSSH known_hosts files (plain, wildcard, negated and hashed `|1|`
 * entries, `@revoked` markers) and pinned SHA256 fingerprints. No blind trust: a target that
 * names neither source is refused before any connection is made.
 */
import { createHash, createHmac, timingSafeEqual } from "crypto";
import * as fs from "fs";
import { RemoteError, errorMessage } from "./errors";
import { shq } from "./shell";

export interface KnownHostEntry {
  line: number;
  marker?: "@revoked" | "@cert-authority";
  /** the host field as written (comma-separated patterns, or one |1|salt|hash) */
  hosts: string;
  keyType: string;
  key: Buffer;
}

/** Parse an OpenSSH known_hosts text. Comments, blank lines and SSH-1 lines are skipped. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).trim();
    if (raw === "" || raw.startsWith("#")) continue;
    const tok = raw.split(/\s+/);
    let marker: KnownHostEntry["marker"];
    if (tok[0]?.startsWith("@")) {
      const m = tok.shift();
      if (m !== "@revoked" && m !== "@cert-authority") continue; // unknown marker: ignore line like ssh does
      marker = m;
    }
    const [hosts, keyType, keyB64] = tok;
    if (!hosts || !keyType || !keyB64 || /^\d+$/.test(keyType)) continue;
    const key = Buffer.from(keyB64, "base64");
    if (key.length === 0) continue;
    const entry: KnownHostEntry = { line: i + 1, hosts, keyType, key };
    if (marker) entry.marker = marker;
    out.push(entry);
  }
  return out;
}

/** The name OpenSSH looks up: `address` for port 22, `[address]:port` otherwise. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

function wildcardMatch(pattern: string, s: string): boolean {
  // OpenSSH match_pattern: only * and ? are special
  const re = new RegExp(
    `^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`,
    "s",
  );
  return re.test(s);
}

function hashedMatch(field: string, name: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, name))
  const parts = field.split("|");
  if (parts.length !== 4 || parts[1] !== "1") return false;
  const salt = Buffer.from(parts[2] as string, "base64");
  const want = Buffer.from(parts[3] as string, "base64");
  const got = createHmac("sha1", salt).update(name).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

/** Does the host field of an entry match `name` (OpenSSH semantics, case-insensitive)? */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|")) return hashedMatch(field, name);
  const lname = name.toLowerCase();
  let positive = false;
  for (const p of field.split(",")) {
    if (p === "") continue;
    if (p.startsWith("!")) {
      if (wildcardMatch(p.slice(1).toLowerCase(), lname)) return false;
    } else if (wildcardMatch(p.toLowerCase(), lname)) {
      positive = true;
    }
  }
  return positive;
}

/** "SHA256:…" exactly as `ssh-keygen -lf` prints it (base64 without padding). */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

/** The key type at the start of an SSH public key blob ("ssh-ed25519", …). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return "unknown";
  const len = key.readUInt32BE(0);
  if (len <= 0 || len > 64 || 4 + len > key.length) return "unknown";
  return key.subarray(4, 4 + len).toString("latin1");
}

function normalizePin(pin: string): string {
  const t = pin.trim();
  const body = t.startsWith("SHA256:") ? t.slice("SHA256:".length) : t;
  return `SHA256:${body.replace(/=+$/, "")}`;
}

/** What a host may present, loaded once per connection attempt. */
export interface HostKeyPolicy {
  /** "host lab2 (10.0.0.5:22)" */
  label: string;
  host: string;
  address: string;
  port: number;
  lookupName: string;
  knownHostsPath?: string;
  /** known_hosts entries for lookupName (no @cert-authority, no @revoked) */
  entries: KnownHostEntry[];
  revoked: KnownHostEntry[];
  pins: string[];
}

export interface HostKeySource {
  host: string;
  address: string;
  port: number;
  knownHostsPath?: string;
  hostKeyFingerprints?: string[];
}

export function hostLabel(t: { host: string; address: string; port: number }): string {
  return `host ${t.host} (${t.address}:${t.port})`;
}

/** Load the policy; throws RemoteError(kind "config") when there is nothing to verify against. */
export function loadHostKeyPolicy(src: HostKeySource, label = hostLabel(src)): HostKeyPolicy {
  const pins = (src.hostKeyFingerprints ?? []).filter((p) => p.trim() !== "").map(normalizePin);
  const lookupName = knownHostsName(src.address, src.port);
  if (!src.knownHostsPath && pins.length === 0) {
    throw new RemoteError(src.host, `${label}: no way to verify its SSH host key`, {
      kind: "config",
      fix:
        `Set knownHostsPath to an OpenSSH known_hosts file that lists ${lookupName} ` +
        `(e.g. from \`ssh-keyscan -p ${src.port} ${src.address}\`, checked against the host), or pin ` +
        `hostKeyFingerprints with the output of \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` run on the host; ` +
        `binkube never trusts an unknown host key`,
    });
  }
  const policy: HostKeyPolicy = {
    label,
    host: src.host,
    address: src.address,
    port: src.port,
    lookupName,
    entries: [],
    revoked: [],
    pins,
  };
  if (src.knownHostsPath) {
    policy.knownHostsPath = src.knownHostsPath;
    let text: string;
    try {
      text = fs.readFileSync(src.knownHostsPath, "utf8");
    } catch (err) {
      throw new RemoteError(src.host, `${label}: cannot read known_hosts ${src.knownHostsPath}: ${errorMessage(err)}`, {
        kind: "config",
        cause: err,
        fix: "Fix knownHostsPath in the inventory or create the file (ssh-keyscan, checked against the host)",
      });
    }
    for (const e of parseKnownHosts(text)) {
      if (e.marker === "@cert-authority") continue; // host certificates are not supported
      if (!hostFieldMatches(e.hosts, lookupName)) continue;
      if (e.marker === "@revoked") policy.revoked.push(e);
      else policy.entries.push(e);
    }
  }
  return policy;
}

export type HostKeyVerdict = { ok: true; via: string } | { ok: false; message: string; fix: string };

export function checkHostKey(policy: HostKeyPolicy, key: Buffer): HostKeyVerdict {
  const fp = fingerprint(key);
  const type = keyTypeOf(key);
  const file = policy.knownHostsPath;
  const revoked = policy.revoked.find((e) => e.key.equals(key));
  if (revoked) {
    return {
      ok: false,
      message: `${policy.label}: host key ${type} ${fp} is marked @revoked in ${file} line ${revoked.line}`,
      fix: "Do not connect: find out why the host presents a revoked key (reinstall its host keys from a trusted source)",
    };
  }
  const hit = policy.entries.find((e) => e.key.equals(key));
  if (hit) return { ok: true, via: `known_hosts ${file} line ${hit.line}` };
  if (policy.pins.includes(fp)) return { ok: true, via: "pinned fingerprint" };

  const where: string[] = [];
  if (file) where.push(`known_hosts ${file}`);
  if (policy.pins.length > 0) where.push(`pinned hostKeyFingerprints (${policy.pins.join(", ")})`);
  const fixes: string[] = [];
  if (file && policy.entries.length > 0) {
    const listed = policy.entries.map((e) => `${e.keyType} ${fingerprint(e.key)}`).join(", ");
    fixes.push(
      `If the host was reinstalled, remove the old entry with \`ssh-keygen -R ${shq(policy.lookupName)} -f ${shq(file)}\`, ` +
        `add the new key after checking its fingerprint on the host (\`ssh-keyscan -p ${policy.port} ${policy.address} >> ${shq(file)}\`) and re-run; ` +
        `otherwise treat this as a possible man-in-the-middle (known_hosts lists ${listed} for ${policy.lookupName})`,
    );
  } else if (file) {
    fixes.push(
      `known_hosts has no entry for ${policy.lookupName}: check the fingerprint on the host ` +
        `(\`ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-|-.*$/g, "") || "ed25519"}_key.pub\`), then add it ` +
        `(\`ssh-keyscan -p ${policy.port} ${policy.address} >> ${shq(file)}\`) or pin it in hostKeyFingerprints, and re-run`,
    );
  }
  if (policy.pins.length > 0) {
    fixes.push(
      "If the host was reinstalled, update hostKeyFingerprints in the inventory after checking the new fingerprint on the host " +
        "(`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) and re-run",
    );
  }
  const verb = policy.entries.length > 0 || policy.pins.length > 0 ? "host key mismatch" : "unknown host key";
  return {
    ok: false,
    message: `${policy.label}: ${verb}: presented ${type} ${fp} not in ${where.join(" nor in ")}`,
    fix: fixes.join(". "),
  };
}

const ALGOS_FOR_KEY_TYPE: Record<string, string[]> = {
  "ssh-ed25519": ["ssh-ed25519"],
  "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
  "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
  "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
  "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
};

/**
 * Host key algorithms to prefer so the server presents a key type that known_hosts lists
 * (what OpenSSH does). Undefined = keep ssh2's default order.
 */
export function preferredHostKeyAlgorithms(policy: HostKeyPolicy): string[] | undefined {
  const algos: string[] = [];
  for (const e of policy.entries) {
    for (const a of ALGOS_FOR_KEY_TYPE[e.keyType] ?? []) if (!algos.includes(a)) algos.push(a);
  }
  return algos.length > 0 ? algos : undefined;
}
