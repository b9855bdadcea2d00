/**
 * The host-to-host relay (src/remote/peer-relay.ts) against a real sshd on 127.0.0.1: several
 * inventory hosts (each its own directory) on one server, the copies over real TCP between the
 * perl listener and client. No mocks.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { PeerRelay, RemoteHost, type FileToShip, type SshTarget } from "../../src/remote";
import { listenerCommand } from "../../src/remote/peer-relay";
import { sshdMissingReason, startSshd, type TestSshd } from "../helpers/sshd";

const missing = sshdMissingReason();
const skip: string | false = missing ?? false;
const noSudo = fs.existsSync("/usr/bin/sudo") ? false : "sudo not installed (apt-get install -y sudo)";

let sshd: TestSshd;
let root: string;
let big: string; // a 2 MiB release binary on the operator's side
let small: string; // below PEER_MIN_BYTES: always from the operator
const BIG = 2 * 1024 * 1024 + 17;

before(async () => {
  if (missing) return;
  sshd = await startSshd();
  root = path.join(sshd.dir, "hosts");
  big = path.join(sshd.dir, "kubelet");
  small = path.join(sshd.dir, "small");
  fs.writeFileSync(big, randomBytes(BIG));
  fs.writeFileSync(small, randomBytes(4096));
});

after(async () => {
  if (sshd) await sshd.stop();
});

const sha = (b: Buffer | string) => createHash("sha256").update(typeof b === "string" ? fs.readFileSync(b) : b).digest("hex");

function target(host: string, over: Partial<SshTarget> = {}): SshTarget {
  return { host, address: sshd.address, port: sshd.port, user: sshd.user, privateKeyPath: sshd.clientKeyPath, knownHostsPath: sshd.knownHostsPath, ...over };
}

/** What a deploy ships to one host: a release binary, a small one, and a rendered file marked public by mistake. */
function plan(host: string): FileToShip[] {
  const d = path.join(root, host);
  return [
    { path: `${d}/bin/kubelet`, mode: 0o755, sourcePath: big, public: true },
    { path: `${d}/bin/small`, mode: 0o755, sourcePath: small, public: true },
    // rendered content never takes the relay, whatever it is marked
    { path: `${d}/etc/kubelet.kubeconfig`, mode: 0o600, content: randomBytes(BIG), public: true },
  ];
}

async function syncHost(relay: PeerRelay, t: SshTarget) {
  const h = await RemoteHost.connect(t);
  try {
    return await h.sync(plan(t.host), { peers: relay });
  } finally {
    await h.close();
  }
}

/** A relay for the test's body, closed after it (its connections to holders). */
async function withRelay<T>(fn: (r: PeerRelay) => Promise<T>): Promise<T> {
  const relay = new PeerRelay();
  try {
    return await fn(relay);
  } finally {
    await relay.close();
  }
}

const kubeletOf = (host: string) => path.join(root, host, "bin/kubelet");

describe("host-to-host relay", { skip }, () => {
  test("a second host gets the release binary from the first; small and rendered files still come from the operator", async () => {
    await withRelay(async (relay) => {
      const a = await syncHost(relay, target("a1"));
      assert.equal(a.peerBytes, 0);
      assert.ok(a.bytesSent >= 2 * BIG, `first host uploads everything: ${a.bytesSent}`);
      const b = await syncHost(relay, target("a2"));
      assert.equal(b.peerBytes, BIG, "the binary came from a1");
      assert.equal(b.bytesSent, 4096 + BIG, "the operator sent only the small file and the rendered one");
      assert.equal(sha(kubeletOf("a2")), sha(big));
      assert.equal(fs.statSync(kubeletOf("a2")).mode & 0o7777, 0o755);
      assert.deepEqual(fs.readdirSync(path.dirname(kubeletOf("a2"))).sort(), ["kubelet", "small"], "no temp file left");
      assert.deepEqual(relay.stats, { copies: 1, copiedBytes: BIG, fallbacks: 0 });
    });
  });

  test("three hosts at once: one upload, two copies (the others wait for that upload, not for a whole sync)", async () => {
    await withRelay(async (relay) => {
      const rs = await Promise.all(["b1", "b2", "b3"].map((h) => syncHost(relay, target(h))));
      assert.equal(rs.reduce((n, r) => n + r.peerBytes, 0), 2 * BIG);
      assert.equal(rs.reduce((n, r) => n + r.bytesSent, 0), BIG + 3 * (BIG + 4096));
      for (const h of ["b1", "b2", "b3"]) assert.equal(sha(kubeletOf(h)), sha(big), h);
    });
  });

  test("a holder whose copy changed: refused by sha256, sent from the operator, that holder not asked again", async () => {
    await withRelay(async (relay) => {
      await syncHost(relay, target("c1"));
      fs.writeFileSync(kubeletOf("c1"), randomBytes(BIG)); // same size, other bytes, behind the relay's back
      const c2 = await syncHost(relay, target("c2"));
      assert.equal(c2.peerBytes, 0);
      assert.equal(c2.peerFallbacks, 1);
      assert.equal(c2.bytesSent, 2 * BIG + 4096, "the operator sent the binary after the refused copy");
      assert.equal(sha(kubeletOf("c2")), sha(big));
      const c3 = await syncHost(relay, target("c3"));
      assert.equal(c3.peerBytes, BIG, "c3 copied from c2, the good holder");
      assert.equal(c3.peerFallbacks, 0);
      assert.equal(sha(kubeletOf("c3")), sha(big));
      assert.equal(relay.stats.fallbacks, 1);
    });
  });

  test("through sudo: the uploader's staged copy serves, the receiver writes as root beside the target", { skip: noSudo }, async () => {
    await withRelay(async (relay) => {
      const rs = await Promise.all(["d1", "d2"].map((h) => syncHost(relay, target(h, { sudo: true }))));
      assert.equal(rs.reduce((n, r) => n + r.peerBytes, 0), BIG);
      assert.equal(rs.reduce((n, r) => n + r.peerFallbacks, 0), 0);
      for (const h of ["d1", "d2"]) {
        assert.equal(sha(kubeletOf(h)), sha(big), h);
        assert.equal(fs.statSync(kubeletOf(h)).mode & 0o7777, 0o755);
      }
    });
  });

  test("a content no host of the relay has is asked of other hosts at the same path: one with other bytes there serves nothing, and it is uploaded", async () => {
    // An upgrade: every host holds the old kubelet where the new one goes (here one file system
    // stands for all hosts, so the other host's copy at that path is the receiver's old one).
    await withRelay((earlier) => syncHost(earlier, target("g1")));
    const asked: string[] = [];
    const relay = new PeerRelay((receiver) => (asked.push(receiver.host), [target("g2"), target("g1")]));
    try {
      fs.writeFileSync(big + ".new", randomBytes(BIG));
      const h = await RemoteHost.connect(target("g1"));
      const r = await h.sync([{ path: kubeletOf("g1"), mode: 0o755, sourcePath: big + ".new", public: true }], { peers: relay }).finally(() => h.close());
      assert.deepEqual(asked, ["g1"], "the relay asked for g1's fellow hosts");
      assert.equal(r.peerBytes, 0);
      assert.equal(r.bytesSent, BIG, "uploaded after the probe found other bytes there");
      assert.equal(r.peerFallbacks, 0, "no host had it: not a failed copy");
      assert.equal(sha(kubeletOf("g1")), sha(big + ".new"));
      assert.deepEqual(relay.stats, { copies: 0, copiedBytes: 0, fallbacks: 0 });
    } finally {
      await relay.close();
    }
  });

  test("a staged copy is asked for where its steps put it on other hosts (usualPath), and served from there", async () => {
    await withRelay((earlier) => syncHost(earlier, target("h1")));
    const relay = new PeerRelay(() => [target("h1")]);
    try {
      const h = await RemoteHost.connect(target("h2"));
      const staged = { path: path.join(root, "h2/stage", sha(big)), mode: 0o644, sourcePath: big, public: true, usualPath: kubeletOf("h1") };
      const r = await h.sync([staged], { peers: relay }).finally(() => h.close());
      assert.equal(r.peerBytes, BIG, "copied from h1's kubelet");
      assert.equal(r.bytesSent, 0);
      assert.equal(sha(staged.path), sha(big));
      assert.deepEqual(relay.stats, { copies: 1, copiedBytes: BIG, fallbacks: 0 });
    } finally {
      await relay.close();
    }
  });

  test("the listener gives nothing to a wrong token, the file to the right one, then exits", async () => {
    const h = await RemoteHost.connect(target("e1"));
    try {
      const token = randomBytes(24).toString("hex");
      let out = "";
      let gotPort!: (p: number) => void;
      const port = new Promise<number>((r) => (gotPort = r));
      const listener = h.exec(listenerCommand(sshd.address, ["/nonexistent", big]), {
        stdin: `${token}\n`,
        timeoutMs: 30_000,
        onStdout: (b) => {
          out += b.toString();
          const m = /^PORT (\d+)\n/.exec(out);
          if (m) gotPort(Number(m[1]));
        },
      });
      const p = await port;
      const ask = (line: string) =>
        new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          const c = net.connect(p, sshd.address, () => c.write(line));
          c.on("data", (d) => chunks.push(d));
          c.on("end", () => resolve(Buffer.concat(chunks)));
          c.on("error", reject);
        });
      assert.equal((await ask(`${randomBytes(24).toString("hex")}\n`)).length, 0, "a wrong token gets nothing");
      const got = await ask(`${token}\n`);
      assert.equal(sha(got), sha(big));
      assert.equal((await listener).code, 0, "the listener exits after serving once");
      await assert.rejects(ask(`${token}\n`), /ECONNREFUSED/, "nothing listens after the copy");
      // a probe's listener: only when its one path holds the sha256 asked for
      const probe = (sha256: string, size: number) => h.exec(listenerCommand(sshd.address, [big], { sha256, size }), { stdin: `${token}\n`, timeoutMs: 30_000, allowFail: true });
      for (const [what, r] of [["other bytes", await probe("0".repeat(64), BIG)], ["another size", await probe(sha(big), BIG + 1)]] as const) {
        assert.equal(r.code, 7, `${what} at that path: exits at once`);
        assert.doesNotMatch(r.stdout, /PORT/, what);
      }
    } finally {
      await h.close();
    }
  });
});
