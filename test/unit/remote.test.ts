/**
 * src/remote against a real OpenSSH sshd on 127.0.0.1 (test/helpers/sshd.ts). No mocks.
 * Skips, with the reason, when /usr/sbin/sshd is not installed (CI: apt-get install -y openssh-server).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { RemoteError, RemoteHost, fingerprint, hostFieldMatches, knownHostsName, parseKnownHosts, shq, type SshTarget } from "../../src/remote";
import { buildCheckScript, parseCheckOutput, prepareFiles } from "../../src/remote/sync";
import { generateKey, sshdMissingReason, startSshd, type TestSshd } from "../helpers/sshd";

const missing = sshdMissingReason();
const skip: string | false = missing ?? false;

let sshd: TestSshd;
let files: string; // scratch dir on the "remote" side (same machine)

before(async () => {
  if (missing) return;
  sshd = await startSshd();
  files = path.join(sshd.dir, "files");
});

after(async () => {
  if (sshd) await sshd.stop();
});

function target(over: Partial<SshTarget> = {}): SshTarget {
  return {
    host: "lab1",
    address: sshd.address,
    port: sshd.port,
    user: sshd.user,
    privateKeyPath: sshd.clientKeyPath,
    knownHostsPath: sshd.knownHostsPath,
    ...over,
  };
}

async function withHost<T>(t: SshTarget, fn: (h: RemoteHost) => Promise<T>, logs?: string[]): Promise<T> {
  const opts = logs ? { log: (l: string) => logs.push(l), verbose: true } : {};
  const h = await RemoteHost.connect(t, opts);
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}

async function rejects(p: Promise<unknown>): Promise<RemoteError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RemoteError, `expected RemoteError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a rejection");
}

const sha = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");
const tempsIn = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.includes(".binkube-tmp-"));

describe("pure helpers", () => {
  test("known_hosts parsing and matching: plain, wildcard, negation, [addr]:port, hashed", () => {
    const key = Buffer.from("000000000b7373682d6564323535313900000020" + "11".repeat(32), "hex");
    const b64 = key.toString("base64");
    const entries = parseKnownHosts(
      [
        "# comment",
        "",
        `10.0.0.5,lab2 ssh-ed25519 ${b64} c`,
        `@revoked 10.0.0.9 ssh-ed25519 ${b64}`,
        `10.0.1.* ,!10.0.1.7 ssh-ed25519 ${b64}`,
        `[10.0.0.5]:2222 ssh-ed25519 ${b64}`,
        "1024 35 12345 old-ssh1-line",
      ].join("\n"),
    );
    assert.equal(entries.length, 4);
    assert.equal(entries[1]?.marker, "@revoked");
    assert.equal(knownHostsName("10.0.0.5", 22), "10.0.0.5");
    assert.equal(knownHostsName("10.0.0.5", 2222), "[10.0.0.5]:2222");
    assert.ok(hostFieldMatches("10.0.0.5,lab2", "10.0.0.5"));
    assert.ok(!hostFieldMatches("10.0.0.5,lab2", "10.0.0.50"));
    assert.ok(!hostFieldMatches("10.0.0.5", "[10.0.0.5]:2222"), "a port-22 entry is not used for another port");
    assert.ok(hostFieldMatches("10.0.1.*,!10.0.1.7", "10.0.1.3"));
    assert.ok(!hostFieldMatches("10.0.1.*,!10.0.1.7", "10.0.1.7"));
    assert.ok(hostFieldMatches("[10.0.0.5]:2222", "[10.0.0.5]:2222"));
    // hashed: |1|salt|HMAC-SHA1(salt, name), as ssh-keygen -H writes
    const salt = randomBytes(20);
    const mac = createHmac("sha1", salt).update("[10.0.0.5]:2222").digest();
    const hashed = `|1|${salt.toString("base64")}|${mac.toString("base64")}`;
    assert.ok(hostFieldMatches(hashed, "[10.0.0.5]:2222"));
    assert.ok(!hostFieldMatches(hashed, "10.0.0.5"));
  });

  test("shq survives a real sh round trip", () => {
    for (const w of ["plain", "it's", "a b", "$(rm -rf /)", "`x`", '"q"', "", "new\nline", "back\\slash", "*"]) {
      const out = execFileSync("sh", ["-c", `printf %s ${shq(w)}`], { encoding: "utf8" });
      assert.equal(out, w);
    }
  });

  test("check script output parsing (stat + sha256sum, missing files tolerated)", () => {
    const prepared = prepareFiles("h", "host h", [
      { path: "/a/b c", mode: 0o644, content: "x" },
      { path: "/a/missing", mode: 0o600, content: "y" },
    ]);
    assert.match(buildCheckScript(prepared), /sha256sum -- "\$@"/);
    const m = parseCheckOutput(`M 644 root:root 0:0 /a/b c\n${"a".repeat(64)}  /a/b c\nO 0 \n`);
    assert.deepEqual(m.files.get("/a/b c"), { mode: 0o644, ownerNames: "root:root", ownerIds: "0:0", sha256: "a".repeat(64) });
    assert.equal(m.files.get("/a/missing"), undefined);
    assert.deepEqual(m.owner, { uid: 0 }, "an owner group that does not resolve stays undefined");
  });

  test("bad sync input is refused with the host and the file named", () => {
    assert.throws(() => prepareFiles("lab3", "host lab3 (1.2.3.4:22)", [{ path: "rel/path", mode: 0o644, content: "" }]), /host lab3 .*rel\/path/);
    assert.throws(() => prepareFiles("lab3", "host lab3", [{ path: "/x", mode: 0o644 }]), /exactly one of content and sourcePath/);
    assert.throws(() => prepareFiles("lab3", "host lab3", [{ path: "/x", mode: 0o644, content: "a", sha256: sha("b") }]), /does not match/);
  });
});

describe("RemoteHost against a real sshd", () => {
  test("exec: output, non-zero exit throws naming host/command/code/stderr, allowFail, stdin", { skip }, async () => {
    await withHost(target(), async (h) => {
      const ok = await h.exec("echo out; echo err >&2; printf 'ü' ");
      assert.deepEqual(ok, { code: 0, stdout: "out\nü", stderr: "err\n" });
      const e = await rejects(h.exec("echo first >&2; echo 'the reason' >&2; exit 3"));
      assert.equal(e.kind, "exec");
      assert.equal(e.exitCode, 3);
      assert.match(e.message, new RegExp(`^host lab1 \\(127\\.0\\.0\\.1:${sshd.port}\\): command failed with exit code 3: echo first`));
      assert.match(e.message, /the reason/);
      const soft = await h.exec("exit 7", { allowFail: true });
      assert.equal(soft.code, 7);
      const piped = await h.exec("tr a-z A-Z", { stdin: "secret stdin" });
      assert.equal(piped.stdout, "SECRET STDIN");
    });
  });

  test("exec: timeout closes the channel, names the command, and the command dies on the host", { skip }, async () => {
    const unique = `sleep 30.${process.pid}`;
    const running = (): boolean => execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).split("\n").includes(unique);
    await withHost(target(), async (h) => {
      const t0 = Date.now();
      const e = await rejects(h.exec(unique, { timeoutMs: 400 }));
      assert.ok(Date.now() - t0 < 3000, "timeout honoured");
      assert.equal(e.kind, "timeout");
      assert.match(e.message, new RegExp(`host lab1 .*timed out after 0\\.4 s: ${unique.replace(".", "\\.")}`));
      assert.equal((await h.exec("echo still here")).stdout, "still here\n");
      for (let i = 0; i < 40 && running(); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(!running(), "the host-side deadline (timeout -s KILL) killed the command");
    });
  });

  test("host keys: known_hosts (plain and hashed) and a pinned fingerprint are accepted", { skip }, async () => {
    await withHost(target(), async (h) => assert.equal((await h.exec("echo ok")).code, 0));
    const hashed = path.join(sshd.dir, "known_hosts.hashed");
    fs.copyFileSync(sshd.knownHostsPath, hashed);
    execFileSync("ssh-keygen", ["-H", "-f", hashed], { stdio: "ignore" });
    assert.match(fs.readFileSync(hashed, "utf8"), /^\|1\|/);
    await withHost(target({ knownHostsPath: hashed }), async (h) => assert.equal((await h.exec("true")).code, 0));
    await withHost(target({ knownHostsPath: undefined, hostKeyFingerprints: [sshd.hostFingerprint] }), async (h) =>
      assert.equal((await h.exec("true")).code, 0),
    );
    // our fingerprint function agrees with ssh-keygen -lf
    const blob = Buffer.from(sshd.hostPublicKey.split(" ")[1] as string, "base64");
    assert.equal(fingerprint(blob), sshd.hostFingerprint);
  });

  test("host keys: a different key in known_hosts is refused at once (no retries), with the fix", { skip }, async () => {
    const other = path.join(sshd.dir, "other_key");
    if (!fs.existsSync(other)) generateKey(other, "other");
    const otherPub = fs.readFileSync(`${other}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
    const kh = path.join(sshd.dir, "known_hosts.wrong");
    fs.writeFileSync(kh, `[127.0.0.1]:${sshd.port} ${otherPub}\n`);
    const t0 = Date.now();
    const e = await rejects(RemoteHost.connect(target({ host: "lab2", knownHostsPath: kh })));
    assert.ok(Date.now() - t0 < 2000, "host key mismatch is not retried");
    assert.equal(e.kind, "hostkey");
    assert.equal(e.host, "lab2");
    assert.match(e.message, new RegExp(`^host lab2 \\(127\\.0\\.0\\.1:${sshd.port}\\): host key mismatch: presented ssh-ed25519 ${sshd.hostFingerprint.replace(/[+/]/g, "\\$&")} not in known_hosts ${kh}`));
    assert.match(e.message, /If the host was reinstalled, remove the old entry with `ssh-keygen -R '\[127\.0\.0\.1\]:\d+' -f /);

    const wrongPin = await rejects(RemoteHost.connect(target({ knownHostsPath: undefined, hostKeyFingerprints: ["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] })));
    assert.equal(wrongPin.kind, "hostkey");
    assert.match(wrongPin.message, /not in pinned hostKeyFingerprints/);

    const empty = path.join(sshd.dir, "known_hosts.empty");
    fs.writeFileSync(empty, "");
    const unknown = await rejects(RemoteHost.connect(target({ knownHostsPath: empty })));
    assert.match(unknown.message, /unknown host key: .*has no entry for \[127\.0\.0\.1\]:\d+/);

    const none = await rejects(RemoteHost.connect(target({ knownHostsPath: undefined })));
    assert.equal(none.kind, "config");
    assert.match(none.message, /no way to verify its SSH host key.*knownHostsPath.*hostKeyFingerprints/);
  });

  test("auth failure and unusable keys are reported as such and not retried", { skip }, async () => {
    const stranger = path.join(sshd.dir, "stranger_key");
    if (!fs.existsSync(stranger)) generateKey(stranger, "stranger");
    const t0 = Date.now();
    const e = await rejects(RemoteHost.connect(target({ privateKeyPath: stranger })));
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(e.kind, "auth");
    assert.match(e.message, /authentication as \S+ with key .*stranger_key was refused.*authorized_keys/);

    const garbage = path.join(sshd.dir, "garbage_key");
    fs.writeFileSync(garbage, "not a key\n");
    const bad = await rejects(RemoteHost.connect(target({ privateKeyPath: garbage })));
    assert.equal(bad.kind, "config");
    assert.match(bad.message, /cannot use private key .*garbage_key/);
    const gone = await rejects(RemoteHost.connect(target({ privateKeyPath: path.join(sshd.dir, "no-such-key") })));
    assert.match(gone.message, /cannot read private key .*no-such-key: ENOENT/);
  });

  test("unreachable port: clear error after bounded retries", { skip }, async () => {
    // a port nobody listens on: bind, read the number, close
    const net = await import("node:net");
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const lines: string[] = [];
    const t0 = Date.now();
    const e = await rejects(RemoteHost.connect(target({ host: "lab9", port }), { log: (l) => lines.push(l) }));
    const ms = Date.now() - t0;
    assert.equal(e.kind, "unreachable");
    assert.match(e.message, new RegExp(`^host lab9 \\(127\\.0\\.0\\.1:${port}\\): cannot connect: .*ECONNREFUSED.*\\(4 attempts in`));
    assert.match(e.message, /sshd runs on the host.*firewall/);
    assert.equal(lines.filter((l) => /retry \d\/3/.test(l)).length, 3, lines.join("\n"));
    assert.ok(ms >= 3400 && ms < 8000, `default backoff 0.5+1+2 s, took ${ms} ms`);
  });

  test("sync: upload, idempotent second run, mode change, atomic content replace, no temp files", { skip }, async () => {
    const dir = path.join(files, "sync1", "etc", "kubernetes");
    const src = path.join(sshd.dir, "kubelet.bin");
    fs.writeFileSync(src, randomBytes(3 * 1024 * 1024 + 17));
    const logs: string[] = [];
    const plan = (mode = 0o644, conf = "a: 1\n") => [
      { path: `${dir}/kubelet.conf`, mode, content: conf },
      { path: `${dir}/ssl/kubelet-key.pem`, mode: 0o600, content: "-----BEGIN PRIVATE KEY-----SECRET-MARKER" },
      { path: `${dir}/bin/kubelet`, mode: 0o755, sourcePath: src },
    ];
    await withHost(target(), async (h) => {
      const r1 = await h.sync(plan());
      assert.deepEqual(r1.changed.length, 3);
      assert.equal(r1.bytesSent, 5 + 40 + fs.statSync(src).size);
      assert.equal(h.bytesSent, r1.bytesSent);
      assert.equal(sha(fs.readFileSync(`${dir}/bin/kubelet`)), sha(fs.readFileSync(src)));
      assert.equal(fs.statSync(`${dir}/ssl/kubelet-key.pem`).mode & 0o7777, 0o600);
      assert.equal(fs.statSync(`${dir}/bin/kubelet`).mode & 0o7777, 0o755);

      const cmds = h.commandsRun;
      const r2 = await h.sync(plan());
      assert.deepEqual(r2, { changed: [], unchanged: plan().map((f) => f.path), bytesSent: 0, peerBytes: 0, peerFallbacks: 0 });
      assert.equal(h.commandsRun - cmds, 1, "an up-to-date sync is one remote round trip");

      const r3 = await h.sync(plan(0o640));
      assert.deepEqual(r3.changed, [`${dir}/kubelet.conf`]);
      assert.equal(r3.bytesSent, 0, "a mode change needs no upload");
      assert.equal(fs.statSync(`${dir}/kubelet.conf`).mode & 0o7777, 0o640);

      const inode = fs.statSync(`${dir}/kubelet.conf`).ino;
      const r4 = await h.sync(plan(0o640, "a: 2\n"), { owner: "root:root" });
      assert.deepEqual(r4.changed, [`${dir}/kubelet.conf`]);
      assert.equal(fs.readFileSync(`${dir}/kubelet.conf`, "utf8"), "a: 2\n");
      assert.notEqual(fs.statSync(`${dir}/kubelet.conf`).ino, inode, "replaced by rename, not rewritten in place");
      assert.equal(fs.statSync(`${dir}/kubelet.conf`).mode & 0o7777, 0o640);
    }, logs);
    for (const d of [dir, `${dir}/ssl`, `${dir}/bin`]) assert.deepEqual(tempsIn(d), [], `temp files left in ${d}`);
    assert.ok(logs.some((l) => l.includes("kubelet-key.pem")), "verbose log shows the files");
    assert.ok(!logs.some((l) => l.includes("SECRET-MARKER")), "file contents never reach the log");
  });

  test("sync: a connection killed mid-upload leaves the target intact; the next sync converges", { skip }, async () => {
    const dir = path.join(files, "interrupt");
    fs.mkdirSync(dir, { recursive: true });
    const dst = `${dir}/etcd`;
    fs.writeFileSync(dst, "old binary\n");
    const src = path.join(sshd.dir, "etcd.bin");
    fs.writeFileSync(src, randomBytes(50 * 1024 * 1024));
    const file = [{ path: dst, mode: 0o755, sourcePath: src }];

    const h = await RemoteHost.connect(target());
    let killed = 0;
    const poll = setInterval(() => {
      if (h.bytesSent > 2 * 1024 * 1024 && killed === 0) killed = sshd.killConnections();
    }, 1);
    try {
      const e = await rejects(h.sync(file));
      assert.ok(killed > 0, "the test killed sshd's connection processes mid-transfer");
      assert.equal(e.kind, "connection");
      // the kill can land during the upload or during the hash check that runs beside it
      assert.match(e.message, /host lab1 .*connection lost while (uploading .*etcd|running: )/);
      assert.ok(h.bytesSent < 50 * 1024 * 1024, `interrupted before the end (${h.bytesSent} bytes)`);
      assert.equal(h.connected, false);
      const again = await rejects(h.exec("true"));
      assert.equal(again.kind, "connection");
    } finally {
      clearInterval(poll);
      await h.close();
    }
    assert.equal(fs.readFileSync(dst, "utf8"), "old binary\n", "target untouched");
    assert.equal(tempsIn(dir).length, 1, "the interrupted upload left its temp file");

    await withHost(target(), async (h2) => {
      const r = await h2.sync(file);
      assert.deepEqual(r.changed, [dst]);
    });
    assert.equal(sha(fs.readFileSync(dst)), sha(fs.readFileSync(src)));
    assert.deepEqual(tempsIn(dir), [], "stale temp file cleaned up");
  });

  test("fetchFile: byte-exact copy, 0600, checked against the host's sha256; failures leave no local file", { skip }, async () => {
    const dir = path.join(files, "fetch");
    fs.mkdirSync(dir, { recursive: true });
    const src = path.join(dir, "snapshot.db");
    const body = randomBytes(20 * 1024 * 1024 + 7);
    fs.writeFileSync(src, body);
    const local = fs.mkdtempSync(path.join(sshd.dir, "home-"));
    await withHost(target(), async (h) => {
      const got = await h.fetchFile(src, path.join(local, "copy.db"));
      assert.deepEqual(got, { bytes: body.length, sha256: sha(body) });
      assert.equal(sha(fs.readFileSync(path.join(local, "copy.db"))), sha(body));
      assert.equal(fs.statSync(path.join(local, "copy.db")).mode & 0o777, 0o600);
      const e = await rejects(h.fetchFile(`${dir}/no such file`, path.join(local, "missing.db")));
      assert.match(e.message, /host lab1 .*sha256sum .*no such file/i);
    });
    // a connection cut mid-transfer: no file, no temp file
    const h = await RemoteHost.connect(target());
    const big = path.join(dir, "big.db");
    fs.writeFileSync(big, randomBytes(200 * 1024 * 1024));
    let killed = 0;
    const poll = setInterval(() => {
      const tmp = fs.readdirSync(local).find((n) => n.includes(".binkube-tmp-"));
      if (tmp && killed === 0 && fs.statSync(path.join(local, tmp)).size > 1024 * 1024) killed = sshd.killConnections();
    }, 1);
    try {
      const e = await rejects(h.fetchFile(big, path.join(local, "big.db")));
      assert.ok(killed > 0, "the test cut the connection mid-transfer");
      assert.equal(e.kind, "connection");
    } finally {
      clearInterval(poll);
      await h.close();
    }
    assert.deepEqual(fs.readdirSync(local).sort(), ["copy.db"]);
  });

  test("an idle connection that dies raises a RemoteError on next use, not a crash", { skip }, async () => {
    const h = await RemoteHost.connect(target());
    try {
      sshd.killConnections();
      for (let i = 0; i < 100 && h.connected; i++) await new Promise((r) => setTimeout(r, 20));
      const e = await rejects(h.exec("true"));
      assert.equal(e.kind, "connection");
      assert.match(e.message, /^host lab1 .*connection lost before running: true/);
    } finally {
      await h.close();
    }
  });

  test("bastion: jump through a second SSH connection (the same sshd), both host keys verified", { skip }, async () => {
    const bastion = {
      host: "bastion1",
      address: sshd.address,
      port: sshd.port,
      user: sshd.user,
      privateKeyPath: sshd.clientKeyPath,
      hostKeyFingerprints: [sshd.hostFingerprint],
    };
    const dst = path.join(files, "via-bastion", "hello.txt");
    await withHost(target({ host: "lab5", bastion }), async (h) => {
      assert.match(h.label, /host lab5 .* via bastion bastion1/);
      // the target's sshd sees the connection coming from the bastion's forward
      assert.match((await h.exec("echo $SSH_CONNECTION")).stdout, /^127\.0\.0\.1 /);
      const r = await h.sync([{ path: dst, mode: 0o600, content: "through the bastion" }]);
      assert.deepEqual(r.changed, [dst]);
    });
    assert.equal(fs.readFileSync(dst, "utf8"), "through the bastion");

    const wrong = await rejects(
      RemoteHost.connect(target({ host: "lab5", bastion: { ...bastion, hostKeyFingerprints: ["SHA256:nope"] } })),
    );
    assert.equal(wrong.kind, "hostkey");
    assert.match(wrong.message, /^bastion host bastion1 .*for host lab5: host key mismatch/);
  });

  test("sudo: commands and uploads go through sudo -n (run as root here)", { skip: skip || (fs.existsSync("/usr/bin/sudo") ? false : "sudo not installed (apt-get install -y sudo)") }, async () => {
    const dir = path.join(files, "sudo");
    const weird = `${dir}/it's a "file"`;
    await withHost(target({ sudo: true }), async (h) => {
      assert.equal((await h.exec(`printf '%s' "it's $(id -u)"`)).stdout, "it's 0");
      const r = await h.sync([
        { path: weird, mode: 0o640, content: "quoted" },
        { path: `${dir}/b`, mode: 0o600, content: Buffer.from([0, 1, 2]) },
      ], { owner: "0:0" });
      assert.equal(r.changed.length, 2);
      assert.equal((await h.sync([{ path: weird, mode: 0o640, content: "quoted" }])).changed.length, 0);
    });
    assert.equal(fs.readFileSync(weird, "utf8"), "quoted");
    assert.equal(fs.statSync(weird).mode & 0o7777, 0o640);
    assert.deepEqual(tempsIn(dir), []);
  });
});
