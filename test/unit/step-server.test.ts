// `binkube step` through the step server answers exactly as a step process of its own would,
// one server serves a deploy's concurrent steps, and nothing unsafe is ever used as a server.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { test } from "node:test";
import { openCluster } from "../../src/cluster";
import { serveSteps } from "../../src/cli/step-server";
import { baseInventory, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";

const BIN = path.join(__dirname, "..", "..", "bin", "binkube.cjs");

function binkube(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("close", (code) => resolve({ code, stderr }));
  });
}

async function cluster(): Promise<string> {
  const dir = tempDir();
  writeFakeBinaries(path.join(dir, "bin"));
  const file = writeInventory(dir, baseInventory());
  await openCluster(file, { create: true });
  return file;
}

const serverLogs = (tmp: string) => fs.readdirSync(path.join(tmp, `binkube-${process.getuid!()}`)).filter((f) => f.endsWith(".log")).map((f) => fs.readFileSync(path.join(tmp, `binkube-${process.getuid!()}`, f), "utf8"));

test("through one step server, concurrent steps print and exit exactly as in processes of their own", async () => {
  const file = await cluster();
  const tmp = tempDir("binkube-sock-");
  const cases = [
    ["step", "etcd", "--host", "k8s-node", "--config", file, "--hash", "0".repeat(64)], // drift: refused before connecting
    ["step", "kubelet", "--host", "k8s-node2", "--config", file], // no key: cannot connect
    ["step", "apiserver", "--host", "k8s-node", "--config", file], // not on this host
    ["step", "nonsense", "--host", "k8s-node", "--config", file], // usage: exit 2
    ["step", "etcd", "--config", file], // no --host: exit 2
  ];
  const alone = await Promise.all(cases.map((c) => binkube(c, { TMPDIR: tmp, BINKUBE_STEP_SERVER: "0" })));
  assert.ok(!fs.existsSync(path.join(tmp, `binkube-${process.getuid!()}`)), "BINKUBE_STEP_SERVER=0 starts no server");
  const served = await Promise.all(cases.map((c) => binkube(c, { TMPDIR: tmp })));
  assert.deepEqual(alone.map((r) => r.code), [1, 1, 1, 2, 2]);
  assert.match(alone[0]!.stderr, /step etcd on k8s-node: drift/);
  for (let i = 0; i < cases.length; i++) assert.deepEqual(served[i], alone[i], `same output and exit code: ${cases[i]!.slice(0, 4).join(" ")}`);
  const logs = serverLogs(tmp);
  assert.equal(logs.length, 1, "one server for one environment");
  assert.equal(logs[0]!.match(/listening on/g)?.length, 1, logs[0]);
  assert.equal(logs[0]!.match(/: exit \d/g)?.length, cases.length, `every request answered by that server:\n${logs[0]}`);
  // another environment is another server: a step reads process.env
  const other = await binkube(cases[0]!, { TMPDIR: tmp, BINKUBE_ALLOW_MISSING_BINARIES: "1" });
  assert.equal(other.code, 1);
  assert.equal(serverLogs(tmp).length, 2);
});

test("a socket directory another user could write is never used: the step runs in its own process", async () => {
  const file = await cluster();
  const tmp = tempDir("binkube-sock-");
  const dir = path.join(tmp, `binkube-${process.getuid!()}`);
  fs.mkdirSync(dir, { mode: 0o777 });
  fs.chmodSync(dir, 0o777);
  const r = await binkube(["step", "etcd", "--host", "k8s-node", "--config", file, "--hash", "0".repeat(64)], { TMPDIR: tmp });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /step etcd on k8s-node: drift/);
  assert.deepEqual(fs.readdirSync(dir), [], "no socket, no log: no server was started there");
});

test("a step server without requests exits and removes its socket; a bad request is answered, not fatal", async () => {
  const sock = path.join(tempDir("binkube-sock-"), "s.sock");
  fs.writeFileSync(sock.replace(/\.sock$/, ".log"), "what the client opened\n");
  const served = serveSteps(sock, { idleMs: 300 });
  for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((res) => setTimeout(res, 10));
  const answer = await new Promise<string>((resolve) => {
    let out = "";
    const c = net.connect(sock, () => c.write('{"argv": "not a list"}\n'));
    c.on("data", (d) => (out += d.toString()));
    c.on("close", () => resolve(out));
  });
  assert.match(answer, /bad request: argv must be a list of strings/);
  assert.match(answer, /\{"exit":2\}/);
  await served;
  assert.ok(!fs.existsSync(sock), "socket removed on exit");
  assert.ok(!fs.existsSync(sock.replace(/\.sock$/, ".log")), "and its log with it");
});

test("a step server runs one instance at a time (a re-run waits for the run an interrupted client left), others side by side", async () => {
  const sock = path.join(tempDir("binkube-sock-"), "s.sock");
  const spans: { id: string; start: number; end: number }[] = [];
  const served = serveSteps(sock, {
    idleMs: 500,
    runStep: async (argv, err) => {
      const start = Date.now();
      err.write(`running ${argv.join(" ")}\n`);
      await new Promise((res) => setTimeout(res, 150));
      spans.push({ id: `${argv[0]} ${argv[2]}`, start, end: Date.now() });
      return 0;
    },
  });
  for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((res) => setTimeout(res, 10));
  const ask = (argv: string[], hangUp = false) =>
    new Promise<string>((resolve) => {
      let out = "";
      const c = net.connect(sock, () => {
        c.write(`${JSON.stringify({ argv })}\n`);
        if (hangUp) setTimeout(() => c.destroy(), 20); // the interrupted client
      });
      c.on("data", (d) => (out += d.toString()));
      c.on("close", () => resolve(out));
    });
  const etcd1 = ["etcd", "--host", "lab1", "--config", "/c.yaml"];
  const answers = await Promise.all([ask(etcd1, true), ask(etcd1), ask(etcd1), ask(["etcd", "--host", "lab2", "--config", "/c.yaml"])]);
  await served;
  const lab1 = spans.filter((s) => s.id === "etcd lab1").sort((a, b) => a.start - b.start);
  assert.equal(lab1.length, 3, "the hung-up client's run still ran to its end");
  for (let i = 1; i < lab1.length; i++) assert.ok(lab1[i]!.start >= lab1[i - 1]!.end, `run ${i} of etcd on lab1 began only after run ${i - 1} ended`);
  const lab2 = spans.find((s) => s.id === "etcd lab2")!;
  assert.ok(lab2.start < lab1[0]!.end, "another host's step ran beside them");
  assert.match(answers[1]!, /waiting for the same step, still running from an earlier request/);
  assert.match(answers[2]!, /\{"exit":0\}/);
});

test("the server the cdktf app starts before Terraform runs is the one Terraform's steps reach (cdktf's own variables aside)", async () => {
  const file = await cluster();
  const tmp = tempDir("binkube-sock-");
  const stackDir = tempDir("binkube-stack-");
  const base: Record<string, string> = { ...(process.env as Record<string, string>), TMPDIR: tmp };
  delete base.NODE_OPTIONS;
  // what cdktf 0.21 gives its app, and what Terraform's local-exec has instead (seen in a real deploy)
  const appEnv = { ...base, CDKTF_OUTDIR: "cdktf.out", CDKTF_CONTEXT_JSON: "{}", CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS: "true", SYNTH_HCL_OUTPUT: "false", NODE_OPTIONS: "--max-old-space-size=4096", PWD: "/elsewhere" };
  const execEnv = { ...base, TF_APPEND_USER_AGENT: "cdktf/0.21.0", PWD: stackDir };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const client = require("../../bin/step-client.cjs") as { prestart(stackDir: string, env: NodeJS.ProcessEnv): boolean };
  assert.equal(client.prestart(stackDir, appEnv), true);
  const sockDir = path.join(tmp, `binkube-${process.getuid!()}`);
  const listening = () => fs.readdirSync(sockDir).filter((f) => f.endsWith(".sock"));
  for (let i = 0; i < 500 && listening().length === 0; i++) await new Promise((res) => setTimeout(res, 10));
  assert.equal(listening().length, 1, "the prestarted server listens");
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [BIN, "step", "etcd", "--host", "k8s-node", "--config", file, "--hash", "0".repeat(64)], { env: execEnv, cwd: stackDir, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("close", (code) => resolve({ code, stderr }));
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /step etcd on k8s-node: drift/);
  const logs = serverLogs(tmp);
  assert.equal(logs.length, 1, `the step used the prestarted server, none of its own: ${logs.join("\n---\n")}`);
  assert.match(logs[0]!, /: exit 1/);
  assert.equal(client.prestart(stackDir, appEnv), false, "a running server is not started twice");
  // an operator's own NODE_OPTIONS reaches the steps: another server, never a silent mix
  assert.equal(client.prestart(stackDir, { ...appEnv, NODE_OPTIONS: "--max-old-space-size=2048" }), true);
  assert.equal(serverLogs(tmp).length, 2);
});

test("a socket left by a server that died is replaced by a new server, not waited on", async () => {
  const file = await cluster();
  const tmp = tempDir("binkube-sock-");
  const args = ["step", "etcd", "--host", "k8s-node", "--config", file, "--hash", "0".repeat(64)];
  const first = await binkube(args, { TMPDIR: tmp });
  assert.equal(first.code, 1);
  const dir = path.join(tmp, `binkube-${process.getuid!()}`);
  const sock = fs.readdirSync(dir).find((f) => f.endsWith(".sock"))!;
  // kill that server hard: its socket stays behind, refusing connections
  const pid = Number(/\(pid (\d+)\)/.exec(serverLogs(tmp)[0]!)![1]);
  process.kill(pid, "SIGKILL");
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
      await new Promise((res) => setTimeout(res, 10));
    } catch {
      break;
    }
  }
  assert.ok(fs.existsSync(path.join(dir, sock)), "the dead server's socket is still there");
  const again = await binkube(args, { TMPDIR: tmp });
  assert.deepEqual(again, first, "same answer");
  const log = serverLogs(tmp)[0]!;
  assert.match(log, /listening on/, "a new server started under the same name");
  assert.doesNotMatch(log, new RegExp(`\\(pid ${pid}\\)`));
  assert.match(log, /step etcd --host k8s-node: exit 1/, "and answered the step");
});
