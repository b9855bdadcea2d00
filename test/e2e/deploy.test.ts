// End-to-end: lab hosts (real systemd, real sshd) → `cdktf deploy` → a real etcd cluster over
// mutual TLS and docker on the nodes; a second deploy changes nothing and opens no SSH session;
// faults fail with host, step and cause, and a re-run converges. Kubernetes server binaries are
// used when the fixture cache has them; otherwise those steps report SKIP with the reason.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { labDown, labUp, sshArgs } from "../../lab/lab";
import type { LabState } from "../../lab/lab";
import { plain, run } from "../helpers/proc";
import { tempDir } from "../helpers/fixtures";
import { E2E_SELECTION, fullOnly, labSkipReason } from "../helpers/e2e";
import { synthesizedStackDir } from "../../stacks/stack-home";
import { readStepsLog, stepsLogSize } from "../../src/runner/steps-log";

const ROOT = path.join(__dirname, "..", "..");
const BIN = path.join(ROOT, "bin", "binkube.cjs");

function why(): string | undefined {
  const lab = labSkipReason();
  if (lab) return lab;
  if (!fs.existsSync(path.join(ROOT, "test", "fixtures", "debian-binaries.sh"))) return "test/fixtures/debian-binaries.sh missing";
  return undefined;
}

const skip = why();

/**
 * The suite, with Terraform or OpenTofu as the engine cdktf drives (TERRAFORM_BINARY_NAME). The
 * fault tests exercise binkube's own SSH path, which no engine touches: they run once, with
 * Terraform in the full suite and with OpenTofu in CI's selection, which leaves the Terraform
 * describe out (every other e2e suite drives Terraform).
 */
/** A machine without Terraform (scripts/engine.sh gave it OpenTofu) runs the OpenTofu describe alone. */
const TERRAFORM_HERE = (() => {
  try {
    execFileSync("terraform", ["version"], { stdio: "ignore", env: { ...process.env, CHECKPOINT_DISABLE: "1" } });
    return true;
  } catch {
    return false;
  }
})();
const FAULTS_ENGINE = E2E_SELECTION === "full" && TERRAFORM_HERE ? "terraform" : "tofu";
function deploySuite(engine: "terraform" | "tofu"): void {
const noTerraform = engine === "terraform" && !TERRAFORM_HERE ? "no terraform on PATH: the OpenTofu describe runs the same tests (scripts/engine.sh provides OpenTofu)" : undefined;
const suiteSkip = skip ?? noTerraform ?? (engine === "terraform" ? fullOnly("deploy.test.ts", "deploy to lab hosts (", "the OpenTofu describe runs the same tests and the faults; Terraform drives every other suite") : undefined);
describe(`deploy to lab hosts (${engine === "tofu" ? "OpenTofu" : "Terraform"})`, { skip: suiteSkip }, () => {
  const dir = tempDir("binkube-e2e-");
  let engineBin = "terraform";
  let lab: LabState;
  let env: NodeJS.ProcessEnv;
  let withK8s = false;
  const config = () => path.join(dir, "cluster.yaml");
  const ssh = async (host: string, cmd: string) => {
    const r = await run("ssh", [...sshArgs(lab, host), cmd], { timeoutMs: 30_000 });
    return r;
  };
  const sshOk = async (host: string, cmd: string) => {
    const r = await ssh(host, cmd);
    assert.equal(r.code, 0, `${host}: ${cmd}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const acceptedSessions = async () => {
    let n = 0;
    for (const h of lab.hosts) n += Number(await sshOk(h.name, "journalctl -u ssh --no-pager -o cat | grep -c 'Accepted publickey' || true"));
    return n;
  };
  const deploy = () => run("npx", ["cdktf", "deploy", "--auto-approve"], { env, cwd: ROOT, timeoutMs: 900_000 });
  /** The synthesized stack of this suite's inventory (beside it, in .binkube/cdktf.out). */
  const stackDirOf = () => synthesizedStackDir(dir)!;
  const step = (s: string, host: string) => run(process.execPath, [BIN, "step", s, "--host", host, "--config", config()], { env, timeoutMs: 300_000 });

  before(async () => {
    const fixtures = path.join(dir, "bin");
    const made = await run("bash", [path.join(ROOT, "test", "fixtures", "debian-binaries.sh"), fixtures], { timeoutMs: 600_000 });
    assert.equal(made.code, 0, `fixture binaries: ${made.stderr}`);
    const k8s = path.join(ROOT, "test", "fixtures", "k8s-binaries.sh");
    let haveK8s = false;
    // Only when the Go-built fixture is already cached: building it is the full e2e's job.
    const cache = path.join(process.env.BINKUBE_FIXTURE_CACHE ?? "/var/cache/binkube/fixtures", "k8s-v1.17.17", "bin", "kube-apiserver");
    if (fs.existsSync(k8s) && fs.existsSync(cache)) {
      const r = await run("bash", [k8s, fixtures], { env: { ...process.env, BINKUBE_K8S_DOWNLOAD: "0" }, timeoutMs: 120_000 });
      haveK8s = r.code === 0 && fs.existsSync(path.join(fixtures, "kube-apiserver"));
    }
    if (engine === "tofu") {
      const t = await run("bash", [path.join(ROOT, "test", "fixtures", "tofu.sh"), path.join(dir, "tofu-bin")], { timeoutMs: 900_000 });
      assert.equal(t.code, 0, `OpenTofu fixture: ${t.stderr.slice(-2000)}`);
      engineBin = path.join(dir, "tofu-bin", "tofu");
    }
    lab = await labUp({ dir, hosts: 3, log: () => undefined });
    // Steps whose binaries the fixtures lack (the flannel CNI plugin, and Kubernetes itself
    // when its fixture is not cached) must report SKIP with the reason, never pass silently.
    env = { ...process.env, BINKUBE_CONFIG: config(), CHECKPOINT_DISABLE: "1", BINKUBE_ALLOW_MISSING_BINARIES: "1", TERRAFORM_BINARY_NAME: engineBin };
    withK8s = haveK8s;
  });

  after(async () => {
    await labDown({ dir, log: () => undefined }); // also after a failed or partial labUp
  });

  test("cdktf deploy brings up etcd (mTLS) and docker; kube steps run or SKIP with the reason", async () => {
    const r = await deploy();
    const out = plain(r.stdout + r.stderr);
    fs.writeFileSync(path.join(dir, "deploy1.log"), out);
    assert.equal(r.code, 0, `deploy failed:\n${out.split("\n").filter((l) => /binkube|Error/.test(l)).slice(-30).join("\n")}`);
    console.log(`# first deploy of 3 lab hosts (${engine}): ${(r.ms / 1000).toFixed(1)} s`);
    // the state says which engine wrote it (OpenTofu 1.10.10 records its own version, Terraform 1.11 its own)
    const state = JSON.parse(fs.readFileSync(path.join(dir, ".binkube", "terraform.tfstate"), "utf8")) as { terraform_version: string };
    assert.equal(state.terraform_version, /v(\d+\.\d+\.\d+)/.exec(execFileSync(engineBin, ["version"], { encoding: "utf8", env: { ...process.env, TF_CLI_CONFIG_FILE: "" } }))![1]);
    if (engine === "tofu") assert.match(execFileSync(engineBin, ["version"], { encoding: "utf8" }), /^OpenTofu v1\.10\.10/);
    for (const h of ["lab1", "lab2", "lab3"]) {
      assert.match(out, new RegExp(`✓ step etcd on ${h}`));
      assert.match(out, new RegExp(`✓ step runtime on ${h}: .*cgroup driver cgroupfs`));
    }
    assert.match(out, /✓ step etcd-health on lab1: 3\/3 members healthy/);
    if (withK8s) {
      // the real v1.17 control plane from the Go-built fixture
      assert.match(out, /✓ step apiserver on lab1: .*\/healthz ok/);
      assert.match(out, /✓ step controller-manager on lab1: .*healthy/);
      assert.match(out, /✓ step scheduler on lab1: .*healthy/);
      assert.match(out, /✓ step bootstrap on lab1: .*RBAC and pod security policies applied/);
    } else {
      assert.match(out, /SKIP step apiserver on lab1: binaries not available: kube-apiserver/);
    }
    // debian-binaries.sh makes no flannel CNI plugin (Debian's CNI plugins 1.x have none), so
    // the kubelet step must SKIP and say why, on every deploy of this suite
    assert.ok(!fs.existsSync(path.join(dir, "bin", "cni", "flannel")), "the Debian fixture has no cni/flannel (test/fixtures/debian-binaries.sh)");
    assert.match(out, /SKIP step kubelet on lab2: binaries not available: .*cni\/flannel/);
  });

  test("the etcd cluster is healthy over mTLS with the generated certificates (checked with etcdctl here)", async () => {
    const pki = path.join(dir, "pki");
    const endpoints = lab.hosts.map((h) => `https://${h.address}:2379`).join(",");
    const tls = [`--cacert=${pki}/etcd-ca.crt`, `--cert=${pki}/etcd-healthcheck-client.crt`, `--key=${pki}/etcd-healthcheck-client.key`];
    const r = await run(path.join(dir, "bin", "etcdctl"), [...tls, `--endpoints=${endpoints}`, "endpoint", "health"], { env: { ...process.env, ETCDCTL_API: "3" } });
    assert.equal((r.stdout + r.stderr).match(/is healthy/g)?.length, 3, r.stdout + r.stderr);
    const members = await run(path.join(dir, "bin", "etcdctl"), [...tls, `--endpoints=${endpoints}`, "member", "list"], { env: { ...process.env, ETCDCTL_API: "3" } });
    assert.equal(members.stdout.trim().split("\n").length, 3);
    // without a client certificate etcd refuses the connection (client-cert-auth)
    const anon = await run(path.join(dir, "bin", "etcdctl"), [`--cacert=${pki}/etcd-ca.crt`, `--endpoints=https://${lab.hosts[0]!.address}:2379`, "--dial-timeout=3s", "--command-timeout=3s", "endpoint", "health"], { env: { ...process.env, ETCDCTL_API: "3" } });
    assert.notEqual(anon.code, 0, "etcd must reject a client without a certificate");
  });

  test("units are in place and enabled; docker is active on every node", async () => {
    for (const h of lab.hosts) {
      assert.equal(await sshOk(h.name, "systemctl is-enabled etcd"), "enabled");
      assert.equal(await sshOk(h.name, "systemctl is-active etcd"), "active");
      assert.equal(await sshOk(h.name, "systemctl is-enabled docker"), "enabled");
      assert.equal(await sshOk(h.name, "systemctl is-active docker"), "active");
      assert.equal(await sshOk(h.name, "stat -c %a /opt/etcd/ssl/server-key.pem"), "600");
      // only the master gets the CA key (for the controller-manager), and only if that step ran
      assert.equal(await sshOk(h.name, "test -e /opt/kubernetes/ssl/ca-key.pem && echo yes || echo no"), h.name === "lab1" && withK8s ? "yes" : "no");
    }
  });

  test("a second deploy reports no changes and opens no SSH session", async () => {
    const sessions = await acceptedSessions();
    const r = await deploy();
    const out = plain(r.stdout + r.stderr);
    assert.equal(r.code, 0, out.slice(-2000));
    assert.match(out, /No changes\. Your infrastructure matches the configuration/);
    assert.doesNotMatch(out, /binkube step/);
    // our own probe above opened 3 sessions; the deploy must add none
    assert.equal(await acceptedSessions(), sessions + lab.hosts.length, "the no-op deploy opened an SSH session");
    // against a bare `terraform plan` of the same synthesized stack
    const stackDir = stackDirOf();
    if (stackDir) {
      const plan = await run(engineBin, ["plan", "-input=false", "-lock=false"], { cwd: stackDir, env, timeoutMs: 300_000 });
      assert.equal(plan.code, 0, plan.stderr);
      assert.match(plain(plan.stdout), /No changes/);
      console.log(`# no-op redeploy (${engine}): ${(r.ms / 1000).toFixed(1)} s; bare ${engine} plan of the same stack: ${(plan.ms / 1000).toFixed(1)} s (ratio ${(r.ms / plan.ms).toFixed(1)}x)`);
    }
  });

  test("a config-only change re-runs only the steps that ship it and sends under 1 MB", async () => {
    const inv = fs.readFileSync(config(), "utf8");
    // docker's log rotation is not an inventory field; the etcd client port is fixed; the
    // kube-proxy conntrack setting is a one-line change in one config file per node.
    fs.writeFileSync(config(), `${inv}\nkubeProxy:\n  conntrackMaxPerCore: 0\n`);
    const mark = stepsLogSize(dir);
    const r = await deploy();
    const out = plain(r.stdout + r.stderr);
    assert.equal(r.code, 0, out.slice(-3000));
    const runs = readStepsLog(dir, mark);
    const steps = runs.map((e) => `${e.step} ${e.host}`).sort();
    if (withK8s) {
      assert.deepEqual(steps, ["kube-proxy lab1", "kube-proxy lab2", "kube-proxy lab3"]);
      const bytes = runs.reduce((n, e) => n + e.bytes, 0);
      console.log(`# config-only redeploy: ${steps.length} step runs, ${bytes} bytes sent, ${(r.ms / 1000).toFixed(1)} s`);
      assert.ok(bytes < 1_000_000, `${bytes} bytes sent`);
    } else {
      assert.deepEqual(steps, ["kube-proxy lab1 skipped", "kube-proxy lab2 skipped", "kube-proxy lab3 skipped"].map((s) => s.split(" ").slice(0, 2).join(" ")));
    }
  });

  if (engine !== FAULTS_ENGINE) return;

  test("fault: a command failing mid-step names host, step and command; a re-run converges", async () => {
    await sshOk("lab2", "rm -rf /opt/cni/bin && touch /opt/cni/bin");
    const r = await step("prepare", "lab2");
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /step prepare on lab2 failed: host lab2 \(10\.250\.\d+\.\d+:22\): command failed with exit code 1: mkdir -p/);
    await sshOk("lab2", "rm -f /opt/cni/bin");
    const again = await step("prepare", "lab2");
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await sshOk("lab2", "test -d /opt/cni/bin && echo dir"), "dir");
  });

  test("fault: an unreachable host fails with host, step, address and fix; nothing is touched", async () => {
    // sshd stops now and comes back by itself 10 s later (a timer inside the host)
    await sshOk("lab3", "systemd-run --quiet --on-active=10 --timer-property=AccuracySec=100ms --unit=binkube-e2e-ssh-back systemctl start ssh && systemctl stop ssh");
    const r = await step("etcd", "lab3");
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /step etcd on lab3: cannot connect: host lab3 \(10\.250\.\d+\.\d+:22\)/);
    assert.match(r.stderr, /refused|unreachable|timed out/i);
    const back = Date.now() + 30_000;
    while ((await ssh("lab3", "true")).code !== 0 && Date.now() < back) await new Promise((res) => setTimeout(res, 1000));
    const again = await step("etcd", "lab3");
    assert.equal(again.code, 0, again.stderr);
  });

  test("fault: a changed host key is refused naming the host; restoring the key converges", async () => {
    await sshOk("lab2", "mkdir -p /root/hostkeys && cp -a /etc/ssh/ssh_host_* /root/hostkeys/ && rm /etc/ssh/ssh_host_* && ssh-keygen -q -A && systemctl restart ssh");
    const r = await step("etcd", "lab2");
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /step etcd on lab2: cannot connect: host lab2 \(10\.250\.\d+\.\d+:22\).*host key/i);
    // restore the original keys (this one connection deliberately skips verification)
    const restore = await run("ssh", ["-i", path.join(dir, "id_ed25519"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", `root@${lab.hosts[1]!.address}`, "cp -a /root/hostkeys/* /etc/ssh/ && systemctl restart ssh"]);
    assert.equal(restore.code, 0, restore.stderr);
    const again = await step("etcd", "lab2");
    assert.equal(again.code, 0, again.stderr);
  });

  test("fault: the SSH connection cut during an upload leaves the old file in place; a re-run converges", async () => {
    const before = await sshOk("lab2", "sha256sum /opt/etcd/bin/etcd | cut -d' ' -f1");
    // a new, larger etcd binary (the real one plus 800 MB of padding ELF ignores at the end):
    // large enough that the upload is still running when the cutter below sees it
    const etcd = path.join(dir, "bin", "etcd");
    for (let i = 0; i < 8; i++) fs.appendFileSync(etcd, Buffer.alloc(100 * 1024 * 1024, 7));
    // The upload is held to 100 MB/s on lab2's host-side veth, so it lasts at least 8 s however
    // fast this machine is: the cutter cannot miss it (an unshaped upload once finished unseen).
    const veth = `vb-${lab.hosts[1]!.machine}`;
    const shaped = await run("tc", ["qdisc", "replace", "dev", veth, "root", "tbf", "rate", "800mbit", "burst", "1mb", "latency", "100ms"]);
    assert.equal(shaped.code, 0, shaped.stderr);
    let r: Awaited<ReturnType<typeof step>>;
    try {
      // inside lab2: once 100 MB of the upload have landed in its temp file (so the cut falls in
      // the middle of this very transfer, whatever the timing), answer every packet to port 22
      // with a TCP reset for 2 s: the step's connection dies at that byte, deterministically.
      // (Killing the sshd session processes instead raced: four CI runs saw the upload finish.)
      const cut = "iptables -I INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset";
      await sshOk(
        "lab2",
        `rm -f /run/binkube-e2e-cut && systemd-run --quiet --unit=binkube-e2e-cutter sh -c 'for i in $(seq 6000); do s=$(stat -c %s /opt/etcd/bin/.etcd.binkube-tmp* 2>/dev/null | head -n1); if [ "\${s:-0}" -ge 104857600 ]; then ${cut} && touch /run/binkube-e2e-cut; sleep 2; ${cut.replace("-I INPUT", "-D INPUT")}; exit 0; fi; sleep 0.01; done'`,
      );
      assert.equal(await sshOk("lab2", "systemctl is-active binkube-e2e-cutter"), "active", "the cutter runs before the step starts");
      r = await step("etcd", "lab2");
    } finally {
      await run("tc", ["qdisc", "del", "dev", veth, "root"]);
    }
    // port 22 answers with resets until the cutter has lifted its rule (2 s after the cut)
    for (let i = 0; i < 30 && (await run("ssh", [...sshArgs(lab, "lab2"), "systemctl is-active binkube-e2e-cutter"])).stdout.trim() !== "inactive"; i++) await new Promise((res) => setTimeout(res, 500));
    const fired = await sshOk("lab2", "test -f /run/binkube-e2e-cut && echo fired || echo 'did not fire'");
    assert.notEqual(r.code, 0, `the step must fail when its connection is cut (cutter ${fired}; step stderr: ${r.stderr.slice(-500)})`);
    assert.match(r.stderr, /step etcd on lab2/);
    assert.equal(await sshOk("lab2", "sha256sum /opt/etcd/bin/etcd | cut -d' ' -f1"), before, "the target must be untouched");
    const again = await step("etcd", "lab2");
    assert.equal(again.code, 0, again.stderr);
    const want = execFileSync("sha256sum", [etcd], { encoding: "utf8" }).split(" ")[0];
    assert.equal(await sshOk("lab2", "sha256sum /opt/etcd/bin/etcd | cut -d' ' -f1"), want);
    assert.equal(await sshOk("lab2", "ls -a /opt/etcd/bin | grep -c binkube-tmp || true"), "0", "no temp file left behind");
    assert.equal(await sshOk("lab2", "systemctl is-active etcd"), "active");
  });
});
}

deploySuite("terraform");
deploySuite("tofu");
