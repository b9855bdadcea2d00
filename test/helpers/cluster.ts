// What the full-cluster e2e suites share: the fixtures a cluster needs, kubectl/etcdctl with the
// cluster's own credentials, and an API poller that counts moments without a serving apiserver.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as https from "node:https";
import * as path from "node:path";
import { plain, run } from "./proc";

export const ROOT = path.join(__dirname, "..", "..");
export const FIXTURES = path.join(ROOT, "test", "fixtures");
export const CACHE = process.env.BINKUBE_FIXTURE_CACHE ?? "/var/cache/binkube/fixtures";

/** The runtime of the e2e clusters that run on containerd (docker is the inventory's default). */
export const CONTAINERD = "runtime: containerd\n";

/** Builds (or copies from the cache) the binaries and image archives a cluster needs. */
export async function clusterFixtures(bin: string, images: string): Promise<void> {
  for (const [script, out] of [
    ["debian-binaries.sh", bin],
    ["crictl.sh", bin], // after debian-binaries.sh: into its containerd/ (runtime: containerd)
    ["k8s-binaries.sh", bin],
    ["flannel-cni.sh", bin],
    ["images.sh", images],
    ["metrics-server.sh", images],
    ["kube-router.sh", images], // addons.networkPolicy is on by default: every cluster runs it
  ] as const) {
    const r = await run("bash", [path.join(FIXTURES, script), out], { timeoutMs: 1_200_000 });
    assert.equal(r.code, 0, `${script}: ${r.stderr.slice(-2000)}`);
  }
}

/** kubectl, etcdctl and /healthz with the credentials in DIR/pki and DIR/admin.kubeconfig. */
export function clusterClients(dir: string, bin: string) {
  const pki = path.join(dir, "pki");
  const kubectl = (...args: string[]) => run(path.join(bin, "kubectl"), ["--kubeconfig", path.join(dir, "admin.kubeconfig"), ...args], { timeoutMs: 120_000 });
  const kubectlOk = async (...args: string[]) => {
    const r = await kubectl(...args);
    assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const etcdctl = (args: string[], timeoutMs = 60_000) =>
    run(path.join(bin, "etcdctl"), [`--cacert=${pki}/etcd-ca.crt`, `--cert=${pki}/etcd-healthcheck-client.crt`, `--key=${pki}/etcd-healthcheck-client.key`, ...args], { env: { ...process.env, ETCDCTL_API: "3" }, timeoutMs });
  /** GET /healthz of one apiserver with the admin client certificate: true when it answers "ok". */
  const healthz = (ip: string): Promise<boolean> =>
    new Promise((resolve) => {
      const req = https.get(
        { host: ip, port: 6443, path: "/healthz", ca: fs.readFileSync(path.join(pki, "ca.crt")), cert: fs.readFileSync(path.join(pki, "admin.crt")), key: fs.readFileSync(path.join(pki, "admin.key")), timeout: 2000 },
        (res) => {
          let body = "";
          res.on("data", (c: Buffer) => (body += c.toString()));
          res.on("end", () => resolve(res.statusCode === 200 && body === "ok"));
          res.on("error", () => resolve(false));
        },
      );
      req.on("timeout", () => req.destroy());
      req.on("error", () => resolve(false));
    });
  /** Polls /healthz of every master until stopped; an outage is a poll at which none answers. */
  const pollApi = (masters: string[]) => {
    let polling = true;
    const stats = { polls: 0, outages: 0, down: Object.fromEntries(masters.map((m) => [m, 0])) as Record<string, number> };
    const loop = (async () => {
      while (polling) {
        const ok = await Promise.all(masters.map(healthz));
        ok.forEach((up, i) => up || stats.down[masters[i]!]!++);
        if (!ok.some(Boolean)) stats.outages++;
        stats.polls++;
        await new Promise((res) => setTimeout(res, 200));
      }
    })();
    const describe = () => `${stats.outages} of ${stats.polls} polls had no master answering /healthz (down per master: ${Object.entries(stats.down).map(([m, n]) => `${m}=${n}`).join(" ")})`;
    return { stop: async () => ((polling = false), await loop, { ...stats, describe: describe() }) };
  };
  /** Polls `etcdctl endpoint health` over ENDPOINTS until stopped: the fewest healthy members seen. */
  const pollEtcd = (endpoints: string[]) => {
    let polling = true;
    const stats = { polls: 0, worst: endpoints.length };
    const loop = (async () => {
      while (polling) {
        const r = await etcdctl([`--endpoints=${endpoints.join(",")}`, "--command-timeout=2s", "endpoint", "health"], 10_000);
        stats.worst = Math.min(stats.worst, ((r.stdout + r.stderr).match(/is healthy/g) ?? []).length);
        stats.polls++;
        await new Promise((res) => setTimeout(res, 300));
      }
    })();
    return { stop: async () => ((polling = false), await loop, { ...stats, describe: `worst ${stats.worst}/${endpoints.length} healthy over ${stats.polls} polls` }) };
  };
  return { kubectl, kubectlOk, etcdctl, healthz, pollApi, pollEtcd };
}

/**
 * After `certs renew --all`, before the deploy: the endpoints still serve the old certificates
 * (`certs check --remote` says STALE), and `cdktf diff` names, per step and host, the file whose
 * hash changed (lab2's etcd peer certificate). BINKUBE runs the CLI with the inventory.
 */
export async function checkRenewalPending(binkube: (...args: string[]) => Promise<{ stdout: string }>, env: NodeJS.ProcessEnv, dir: string): Promise<void> {
  const stale = await binkube("certs", "check", "--remote");
  assert.match(stale.stdout, /STALE/, "before the deploy, endpoints still serve the old certificates");
  const d = await run("npx", ["cdktf", "diff"], { env, cwd: ROOT, timeoutMs: 300_000 });
  const diff = plain(d.stdout + d.stderr);
  fs.writeFileSync(path.join(dir, "diff-renew.log"), diff);
  assert.match(diff, /# terraform_data\.etcd_lab2 \(etcd_lab2\) must be replaced/, `cdktf diff output in ${dir}/diff-renew.log`);
  assert.match(diff, /"\/opt\/etcd\/ssl\/peer\.pem"\s*=\s*"644:sha256:[0-9a-f]+"\s*->\s*"644:sha256:[0-9a-f]+"/, `cdktf diff output in ${dir}/diff-renew.log`);
}

/**
 * What a deploy that rolls every etcd member (a renewal) must show in its output OUT: members
 * restarted one after another, each healthy with a snapshot before the next, leadership handed to a
 * peer first; and the snapshots home under DIR/.binkube: one per member, private, real etcd snapshots.
 */
export async function checkEtcdRoll(out: string, dir: string, bin: string, members: string[]): Promise<void> {
  const order = [...out.matchAll(/✓ step etcd on (lab\d): .*member healthy, snapshot \.binkube\/etcd-snapshots\/\1\/snapshot-\d{8}T\d{6}Z\.db \([\d.]+ MB, also \/var\/lib\/etcd-snapshots\//g)].map((m) => m[1]!);
  assert.deepEqual(order, members);
  // the leader handed leadership to a peer before its restart (no cluster-wide election)
  assert.match(out, /✓ step etcd on lab\d: .*leadership handed to lab\d/);
  for (const h of order) {
    const snaps = path.join(dir, ".binkube", "etcd-snapshots", h);
    const files = fs.readdirSync(snaps);
    assert.equal(files.length, 1, `${snaps}: ${files.join(", ")}`);
    assert.equal(fs.statSync(snaps).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(snaps, files[0]!)).mode & 0o777, 0o600);
    const status = await run(path.join(bin, "etcdctl"), ["snapshot", "status", path.join(snaps, files[0]!), "-w", "json"], { env: { ...process.env, ETCDCTL_API: "3" } });
    assert.equal(status.code, 0, status.stderr);
    assert.ok((JSON.parse(status.stdout) as { totalKey: number }).totalKey > 100, status.stdout);
  }
}

export async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 180_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** What a lab cluster needs beyond the lab's defaults (`lab up` keeps it when it adds hosts). */
export function appendClusterSettings(dir: string): void {
  const images = fs.readdirSync(path.join(dir, "images")).filter((f) => f.endsWith(".tar")).map((f) => `images/${f}`);
  fs.appendFileSync(
    path.join(dir, "cluster.yaml"),
    ["images:", `  preload: [${images.join(", ")}]`, "kubeProxy:", "  conntrackMaxPerCore: 0   # nf_conntrack_max is read-only inside lab containers", ""].join("\n"),
  );
}

/**
 * Writes DIR/diagnostics.txt when a cluster test fails: nodes, pods and their events from the API,
 * and per host the failed units and the kubelet/docker/flannel journals. CI runs leave only
 * artefacts behind; this is what the next reader needs to tell a product defect from a lab one.
 */
export async function writeDiagnostics(dir: string, kubectl: (...args: string[]) => Promise<{ stdout: string; stderr: string }>, hostSsh: Record<string, string[]>): Promise<string> {
  const file = path.join(dir, "diagnostics.txt");
  const sections: string[] = [];
  const add = (title: string, text: string) => sections.push(`=== ${title}\n${text.trim()}\n`);
  for (const args of [["get", "nodes", "-o", "wide"], ["get", "pods", "-A", "-o", "wide"], ["-n", "kube-system", "describe", "pods"], ["get", "events", "-A", "--sort-by=.lastTimestamp"]]) {
    const r = await kubectl(...args).catch((e: Error) => ({ stdout: "", stderr: e.message }));
    add(`kubectl ${args.join(" ")}`, r.stdout + r.stderr);
  }
  for (const [host, ssh] of Object.entries(hostSsh)) {
    const script = [
      "systemctl --failed --no-legend",
      "if command -v dockerd >/dev/null; then docker ps -a --format '{{.Names}} {{.Status}}' 2>&1 | head -30; else crictl ps -a 2>&1 | head -30; fi",
      "ip -br addr; ip route",
      "for u in kubelet docker containerd kube-proxy; do echo \"--- journalctl -u $u\"; journalctl -u $u -n 80 --no-pager -o short-precise; done",
      "for c in $(docker ps -aq --filter name=flannel 2>/dev/null); do echo \"--- docker logs $c\"; docker logs --tail 40 $c 2>&1; done",
      "for c in $(crictl ps -aq --name flannel 2>/dev/null); do echo \"--- crictl logs $c\"; crictl logs --tail 40 $c 2>&1; done",
    ].join("; echo; ");
    const r = await run("ssh", [...ssh, script], { timeoutMs: 60_000 });
    add(`host ${host}`, r.stdout + r.stderr);
  }
  fs.writeFileSync(file, sections.join("\n"));
  return file;
}
