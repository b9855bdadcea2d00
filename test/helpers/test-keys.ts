// RSA keys made once and reused by later test processes: generating them was most of the unit
// suite's time (a 3-host PKI takes some 25). Imported for its effect by the test files that make
// PKIs; the CLI processes those tests spawn still generate fresh keys.
//
// The cache lives under the OS temp dir (0700, one file per key, 0600), never in the repository.
// A process takes cache entries in order and never one twice, so within a test file keys are as
// distinct as fresh ones (a renewed leaf gets a new key, no two certificates share one by
// chance); past the end of the cache it generates and adds to it.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import forge from "node-forge";
import { KeyPair, freshKeyPair, useKeySourceInTests } from "../../src/pki/x509";

const DIR = path.join(os.tmpdir(), `binkube-test-keys-${process.getuid?.() ?? "user"}`);
/** Enough for the hungriest test file (stack.test.ts synthesizes many fresh PKIs). */
const MAX = 600;
let next = 0;

function read(file: string): KeyPair | undefined {
  try {
    const privateKey = forge.pki.privateKeyFromPem(fs.readFileSync(file, "utf8")) as forge.pki.rsa.PrivateKey;
    return { privateKey, publicKey: forge.pki.setRsaPublicKey(privateKey.n, privateKey.e) };
  } catch {
    return undefined; // not made yet (or unreadable): made again below
  }
}

async function cachedKeyPair(bits: number): Promise<KeyPair> {
  const i = next++;
  if (bits !== 2048 || i >= MAX) return freshKeyPair(bits);
  const file = path.join(DIR, `rsa2048-${i}.pem`);
  const cached = read(file);
  if (cached) return cached;
  const made = await freshKeyPair(bits);
  fs.mkdirSync(DIR, { recursive: true, mode: 0o700 });
  // written whole, then renamed: a process reading the same entry meanwhile sees none or all of it
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, forge.pki.privateKeyToPem(made.privateKey), { mode: 0o600 });
  fs.renameSync(tmp, file);
  return made;
}

// Run directly (node file.test.ts, no test runner) the keys are fresh, as in production.
if (process.env.NODE_TEST_CONTEXT !== undefined) useKeySourceInTests(cachedKeyPair);
