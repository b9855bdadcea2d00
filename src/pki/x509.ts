// node-forge wrappers: key generation (native, through forge's Node crypto path), CA and leaf
// issuance with sha256, random positive 16-byte serials and an authorityKeyIdentifier taken
// from the CA's key (forge's `keyIdentifier: true` would use the leaf's own key).
import * as crypto from "node:crypto";
import forge from "node-forge";

export type Usage = "server" | "client";

export interface Subject {
  cn: string;
  o?: string[];
}

export interface KeyPair {
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
}

export interface Issued {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
  certPem: string;
  keyPem: string;
}

/**
 * RSA key generation. forge delegates to Node's native crypto.generateKeyPair when no custom
 * prng is passed and usePureJavaScript is off; we assert that path instead of trusting it.
 */
export function freshKeyPair(bits = 2048): Promise<KeyPair> {
  if ((forge as unknown as { options: { usePureJavaScript: boolean } }).options.usePureJavaScript) throw new Error("node-forge is in pure-JavaScript mode: refusing slow, non-native RSA key generation");
  return new Promise((resolve, reject) =>
    forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 }, (err, keypair) => (err ? reject(err) : resolve(keypair))),
  );
}

/**
 * Where new key pairs come from: always freshKeyPair, unless a unit test installed keys it made
 * earlier (test/helpers/test-keys.ts; RSA generation was most of the unit suite's time).
 */
let keySource: (bits: number) => Promise<KeyPair> = freshKeyPair;

export function generateKeyPair(bits = 2048): Promise<KeyPair> {
  return keySource(bits);
}

/** Tests only: refused outside the node test runner, so a binkube process always makes fresh keys. */
export function useKeySourceInTests(source: (bits: number) => Promise<KeyPair>): void {
  if (process.env.NODE_TEST_CONTEXT === undefined) throw new Error("a key source other than fresh generation is for unit tests (node --test) only");
  keySource = source;
}

/** A random positive 128-bit serial, as hex (high bit cleared, never zero-leading). */
export function randomSerial(): string {
  const bytes = crypto.randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString("hex");
}

function subjectAttrs(s: Subject): forge.pki.CertificateField[] {
  return [...(s.o ?? []).map((o) => ({ shortName: "O", value: o })), { shortName: "CN", value: s.cn }];
}

function validity(cert: forge.pki.Certificate, days: number, now: Date): void {
  // Backdate a little so hosts with slightly slow clocks accept the certificate at once.
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60 * 1000);
  cert.validity.notAfter = new Date(now.getTime() + days * 24 * 3600 * 1000);
}

/** Node KeyObjects of the forge keys that signed, so a CA's key is converted once. */
const nativeKeys = new WeakMap<forge.pki.rsa.PrivateKey, crypto.KeyObject>();

/**
 * sha256WithRSAEncryption, as forge's cert.sign does it, except that the RSA private-key
 * operation runs in Node's crypto (OpenSSL) instead of forge's JavaScript big integers: that
 * was about 1.3 s of a fresh 3-host PKI, on the event loop. PKCS#1 v1.5 signatures are
 * deterministic, so the bytes are the ones forge would write.
 */
function sign(cert: forge.pki.Certificate, key: forge.pki.rsa.PrivateKey): void {
  const md = forge.md.sha256.create();
  const oid = forge.pki.oids.sha256WithRSAEncryption!;
  const c = cert as forge.pki.Certificate & { md: forge.md.MessageDigest; signatureOid: string; tbsCertificate: forge.asn1.Asn1 };
  c.md = md;
  c.signatureOid = cert.siginfo.algorithmOid = oid;
  c.tbsCertificate = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert); // public in forge, missing from its types
  const tbs = forge.asn1.toDer(c.tbsCertificate).getBytes();
  md.update(tbs);
  let native = nativeKeys.get(key);
  if (!native) nativeKeys.set(key, (native = crypto.createPrivateKey(forge.pki.privateKeyToPem(key))));
  c.signature = crypto.sign("sha256", Buffer.from(tbs, "binary"), native).toString("binary");
}

export async function createCA(cn: string, days: number, now = new Date()): Promise<Issued> {
  const keys = await generateKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = randomSerial();
  validity(cert, days, now);
  const attrs = subjectAttrs({ cn });
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  sign(cert, keys.privateKey);
  return toIssued(cert, keys.privateKey);
}

export interface LeafRequest {
  subject: Subject;
  usages: Usage[];
  dnsNames?: string[];
  ips?: string[];
  days: number;
  /** Hex serial decided ahead (an issuance record's); else a random one. */
  serial?: string;
}

/** `keys`: a pair generated ahead (while the CA was still being made); else one is generated here. */
export async function issueLeaf(ca: Issued, req: LeafRequest, now = new Date(), keys?: KeyPair): Promise<Issued> {
  keys ??= await generateKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = req.serial ?? randomSerial();
  validity(cert, req.days, now);
  cert.setSubject(subjectAttrs(req.subject));
  cert.setIssuer(ca.cert.subject.attributes);
  const altNames = [
    ...(req.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(req.ips ?? []).map((ip) => ({ type: 7, ip })),
  ];
  const extensions: object[] = [
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: req.usages.includes("server"), clientAuth: req.usages.includes("client") },
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: ca.cert.generateSubjectKeyIdentifier().getBytes() },
  ];
  if (altNames.length > 0) extensions.push({ name: "subjectAltName", altNames });
  cert.setExtensions(extensions);
  sign(cert, ca.key);
  return toIssued(cert, keys.privateKey);
}

function toIssued(cert: forge.pki.Certificate, key: forge.pki.rsa.PrivateKey): Issued {
  return { cert, key, certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(key) };
}

export function parseIssued(certPem: string, keyPem: string): Issued {
  return { cert: forge.pki.certificateFromPem(certPem), key: forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey, certPem, keyPem };
}

// ---- inspection, used by the keep-or-reissue decision and `binkube certs check` ----

export interface CertFacts {
  cn: string;
  o: string[];
  issuerCN: string;
  dnsNames: string[];
  ips: string[];
  usages: Usage[];
  isCA: boolean;
  notBefore: Date;
  notAfter: Date;
  serial: string;
}

export function certFacts(cert: forge.pki.Certificate): CertFacts {
  const field = (attrs: forge.pki.CertificateField[], short: string) => attrs.filter((a) => a.shortName === short).map((a) => String(a.value));
  const san = cert.getExtension("subjectAltName") as { altNames?: { type: number; value?: string; ip?: string }[] } | null;
  const eku = cert.getExtension("extKeyUsage") as { serverAuth?: boolean; clientAuth?: boolean } | null;
  const bc = cert.getExtension("basicConstraints") as { cA?: boolean } | null;
  const usages: Usage[] = [];
  if (eku?.serverAuth) usages.push("server");
  if (eku?.clientAuth) usages.push("client");
  return {
    cn: field(cert.subject.attributes, "CN")[0] ?? "",
    o: field(cert.subject.attributes, "O"),
    issuerCN: field(cert.issuer.attributes, "CN")[0] ?? "",
    dnsNames: (san?.altNames ?? []).filter((a) => a.type === 2).map((a) => a.value!),
    ips: (san?.altNames ?? []).filter((a) => a.type === 7).map((a) => a.ip!),
    usages,
    isCA: bc?.cA === true,
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
    serial: cert.serialNumber,
  };
}

export function keyMatchesCert(issued: Issued): boolean {
  const pub = issued.cert.publicKey as forge.pki.rsa.PublicKey;
  return pub.n.equals(issued.key.n) && pub.e.equals(issued.key.e);
}

export function signedBy(cert: forge.pki.Certificate, ca: forge.pki.Certificate): boolean {
  try {
    return ca.verify(cert);
  } catch {
    return false;
  }
}


