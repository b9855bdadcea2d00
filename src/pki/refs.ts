// Leaf certificates in rendered files are references, resolved late like binaries (`binary:`):
// a step's files() writes a token where a leaf's PEM goes; the plan hashes the content with each
// token resolved to what identifies the leaf (its issuance record: pki/issuance.ts), and the runner
// resolves the same content to the real PEMs only when it ships it, after issuing what is pending.
// One render per instance; nothing records which leaves a render read.
//
// A token carries a nonce drawn per process, so no inventory value can spell one: a string that
// reaches a file through the inventory is never taken for a reference.
import * as crypto from "node:crypto";
import { yamlScalar } from "../render/yaml-scalar";

export interface PemPair {
  certPem: string;
  keyPem: string;
}

/** How a reference is written where it lands: the PEM, its base64 (kubeconfig *-data), or a YAML scalar. */
export type RefEncoding = "pem" | "base64" | "yaml";
type Part = "cert" | "key";

const NONCE = crypto.randomBytes(8).toString("hex");
const TOKEN = `@@binkube-leaf/${NONCE}/([a-z0-9.-]+)/(cert|key)/(pem|base64|yaml)@@`;
/** A fresh expression per use: a global RegExp keeps lastIndex between calls. */
const tokens = () => new RegExp(TOKEN, "g");
const token = (name: string, part: Part, enc: RefEncoding) => `@@binkube-leaf/${NONCE}/${name}/${part}/${enc}@@`;

/** A leaf as a step's files() writes it (pki/catalog.ts names). */
export function leafRef(name: string): PemPair {
  if (!/^[a-z0-9.-]+$/.test(name)) throw new Error(`"${name}" is not a certificate name`);
  return { certPem: token(name, "cert", "pem"), keyPem: token(name, "key", "pem") };
}

/** The same reference written another way, when `value` is exactly one PEM reference; undefined otherwise. */
export function encodedRef(value: string, enc: RefEncoding): string | undefined {
  const m = new RegExp(`^${TOKEN}$`).exec(value);
  return m && m[3] === "pem" ? token(m[1]!, m[2] as Part, enc) : undefined;
}

export interface LeafRefs {
  /** Every leaf the content references. */
  names: string[];
  /** Those whose private key it references. */
  keys: string[];
}

export function refsIn(content: string): LeafRefs {
  const names = new Set<string>();
  const keys = new Set<string>();
  for (const m of content.matchAll(tokens())) {
    names.add(m[1]!);
    if (m[2] === "key") keys.add(m[1]!);
  }
  return { names: [...names].sort(), keys: [...keys].sort() };
}

/** The content with every reference replaced by what `lookup` gives for its leaf, encoded as the reference says. */
export function resolveRefs(content: string, lookup: (name: string) => PemPair): string {
  return content.replace(tokens(), (_m, name: string, part: Part, enc: RefEncoding) => {
    const pem = part === "cert" ? lookup(name).certPem : lookup(name).keyPem;
    if (enc === "base64") return Buffer.from(pem).toString("base64");
    if (enc === "yaml") return yamlScalar(pem);
    return pem;
  });
}
