// Property: every free-text field filled with shell, YAML and systemd metacharacters that are
// *valid* for that field renders to output that is inert. Flags files are read the way systemd reads
// them (EnvironmentFile, then `$VAR` split on whitespace) and carry exactly the intended flags;
// manifests parse with no extra or missing keys and the values read back unchanged; remote commands
// pass `bash -n` and, run for real against stand-ins, hand each value over as one argument; the
// local-exec commands in cdk.tf.json, as Terraform reads them, call binkube with the intended argv.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { Testing } from "cdktf";
import { parseAllDocuments } from "yaml";
import { Cluster, openCluster } from "../../src/cluster";
import { StepInstance } from "../../src/plan";
import { loadArchiveCommand } from "../../src/steps/runtime-contract";
import { buildCheckScript, buildFinalizeScript, prepareFiles } from "../../src/remote/sync";
import { ClusterStack, teardownId } from "../../stacks/cluster-stack";
import { baseInventory, dockerArchiveBytes, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";

// A directory name that means something to sh, Terraform and systemd alike.
const HOSTILE_DIR = "inv ${a} %{b} $(id) `id` 'q' \"d\" ;|&<>*?[x] #c %n";
const HOSTILE_ARCHIVE = "img ${w} %{z} $(touch pwned) `touch pwned2` 'q' \"d\" ;|&<>*?[x] #c.tar";
const DIGEST = "sha256:" + "0123456789abcdef".repeat(4);

const LABELS = { "example.com/rack_a.b-c": "r1_a.b-c", "topology.kubernetes.io/zone": "z-1.a_b", "kubelet.kubernetes.io/x": "" };
const EXTRA_ARGS = {
  "eviction-hard": "memory.available<100Mi,nodefs.available<10%",
  "register-with-taints": "dedicated=infra:NoSchedule",
  "system-reserved": "cpu=100m,memory=100Mi",
  "feature-gates": "A=true,B=false",
  "root-dir": "/x;y|z&w(v)u*t?s[r]q{p}o!n#m~l^k%j@i+h=g,f:e",
};
const IMAGES = {
  pause: `registry.local:5000/team_a/pause-x__y.z:3.1-rc.1_b@${DIGEST}`,
  // valid image names that YAML would read as a boolean and as a sexagesimal number
  coredns: "true",
  flannel: "1:20",
};

function hostileInventory(dir: string) {
  const raw = baseInventory();
  raw.hosts[0]!.labels = LABELS;
  return {
    ...raw,
    network: { clusterDomain: "corp-1.internal" },
    apiserver: { extraSANs: ["*.k8s-x.example.com", "k8s-1.example.com"] },
    kubelet: { extraArgs: EXTRA_ARGS },
    images: { ...IMAGES, preload: [path.join(dir, HOSTILE_ARCHIVE)] },
  };
}

/** An EnvironmentFile as systemd 252 reads it (systemd.exec(5), env-file.c): KEY=VALUE lines, '#'/';' comments, double- or single-quoted values, backslash-newline continues a line. */
function parseEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (text[i] === "#" || text[i] === ";") {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    const eq = text.indexOf("=", i);
    if (eq < 0) break;
    const key = text.slice(i, eq).trim();
    assert.match(key, /^[A-Za-z_][A-Za-z0-9_]*$/, `bad EnvironmentFile key ${JSON.stringify(key)}`);
    i = eq + 1;
    let value = "";
    for (; i < text.length && text[i] !== "\n"; i++) {
      const c = text[i]!;
      if (c === '"') {
        for (i++; i < text.length && text[i] !== '"'; i++) {
          if (text[i] === "\\") {
            i++;
            if (text[i] === "\n") continue; // line continuation
            assert.ok('"\\`$'.includes(text[i]!), `systemd would keep the backslash before ${JSON.stringify(text[i])}`);
          }
          value += text[i];
        }
        assert.equal(text[i], '"', `unterminated double quote in ${key}`);
      } else if (c === "'") {
        for (i++; i < text.length && text[i] !== "'"; i++) value += text[i];
      } else if (c === "\\" && text[i + 1] === "\n") i++;
      else value += c;
    }
    env[key] = value.trim();
  }
  return env;
}

/** `ExecStart=BIN $VAR`: systemd replaces an unbraced $VAR by its value split at whitespace. */
function execArgs(unit: string, env: Record<string, string>): string[] {
  const line = /^ExecStart=(.*)$/m.exec(unit)![1]!;
  return line.split(/\s+/).filter(Boolean).slice(1).flatMap((w) => (w.startsWith("$") ? env[w.slice(1)]!.split(/\s+/).filter(Boolean) : [w]));
}

const fileOf = (inst: StepInstance, p: string) => inst.files.find((f) => f.path === p)?.content;

/** Every mapping key path of every document ("a.b[].c"), to compare two renders' shapes. */
function keyPaths(v: unknown, at = "", out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) v.forEach((x) => keyPaths(x, `${at}[]`, out));
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) keyPaths(x, `${at}.${k}`, out.add(`${at}.${k}`));
  return out;
}

function docs(text: string): unknown[] {
  return parseAllDocuments(text, { version: "1.1" }).map((d) => {
    assert.deepEqual(d.errors, [], "manifest parses");
    return d.toJS();
  });
}

describe("hostile but valid values render inert", () => {
  let hostile: Cluster;
  let plain: Cluster;
  let dir: string;

  test("setup: both inventories synthesize", async () => {
    const root = tempDir("binkube-inert-");
    dir = path.join(root, HOSTILE_DIR);
    fs.mkdirSync(dir);
    writeFakeBinaries(path.join(dir, "bin"));
    fs.writeFileSync(path.join(dir, HOSTILE_ARCHIVE), dockerArchiveBytes());
    hostile = await openCluster(writeInventory(dir, hostileInventory(dir)), { create: true });
    const plainDir = path.join(root, "plain");
    fs.mkdirSync(plainDir);
    writeFakeBinaries(path.join(plainDir, "bin"));
    plain = await openCluster(writeInventory(plainDir, baseInventory()), { create: true });
  });

  test("flags files: systemd reads exactly the intended flags, values intact", () => {
    const kubelet = hostile.plan.instances.find((i) => i.step === "kubelet" && i.host.name === "k8s-master")!;
    const env = parseEnvironmentFile(fileOf(kubelet, "/opt/kubernetes/cfg/kubelet.conf")!);
    const args = execArgs(fileOf(kubelet, "/usr/lib/systemd/system/kubelet.service")!, env);
    const plainKubelet = plain.plan.instances.find((i) => i.step === "kubelet" && i.host.name === "k8s-master")!;
    const plainArgs = execArgs(fileOf(plainKubelet, "/usr/lib/systemd/system/kubelet.service")!, parseEnvironmentFile(fileOf(plainKubelet, "/opt/kubernetes/cfg/kubelet.conf")!));
    assert.ok(args.every((a) => /^--[a-z][a-z0-9-]*=/.test(a)), `every word is one --flag=value: ${JSON.stringify(args)}`);
    assert.equal(args.length, plainArgs.length + 1 + Object.keys(EXTRA_ARGS).length, "base flags + --node-labels + one per extraArgs entry, nothing more");
    const flags = new Map(args.map((a) => [a.slice(2, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]));
    for (const [k, v] of Object.entries(EXTRA_ARGS)) assert.equal(flags.get(k), v);
    assert.equal(flags.get("pod-infra-container-image"), IMAGES.pause);
    assert.equal(flags.get("node-labels"), Object.entries(LABELS).map(([k, v]) => `${k}=${v}`).join(","));
    // every other flags file of every host: only --flag[=value] words
    for (const inst of hostile.plan.instances) {
      for (const f of inst.files.filter((x) => /\/cfg\/[^/]+\.conf$/.test(x.path) && x.content)) {
        const unitName = path.basename(f.path, ".conf");
        const unit = inst.files.find((x) => x.path === `/usr/lib/systemd/system/${unitName}.service`)?.content;
        const env2 = parseEnvironmentFile(f.content!);
        if (unit && /\$[A-Z_]+/.test(unit)) assert.ok(execArgs(unit, env2).every((a) => a.startsWith("--")), `${inst.id} ${f.path}`);
      }
    }
  });

  test("manifests: same keys as a plain render, values read back unchanged", () => {
    const shape = (c: Cluster) => {
      const out = new Map<string, Set<string>>();
      for (const inst of c.plan.instances) for (const f of inst.files) if (/\.(ya?ml)$/.test(f.path) && f.content) out.set(`${inst.step} ${f.path}`, keyPaths(docs(f.content)));
      return out;
    };
    const a = shape(hostile);
    const b = shape(plain);
    assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
    for (const [k, keys] of a) assert.deepEqual([...keys].sort(), [...b.get(k)!].sort(), `keys of ${k}`);
    const addons = hostile.plan.instances.find((i) => i.step === "addons")!;
    const images = (file: string) => JSON.stringify(docs(fileOf(addons, file)!)).match(/"image":("[^"]*")/g)!.map((m) => JSON.parse(m.slice(8)) as string);
    assert.deepEqual([...new Set(images("/opt/kubernetes/manifests/coredns.yaml"))], [IMAGES.coredns], "a YAML-boolean-looking image stays the string");
    assert.deepEqual([...new Set(images("/opt/kubernetes/manifests/kube-flannel.yaml"))], [IMAGES.flannel], "a sexagesimal-looking image stays the string");
    const kubeletConfig = docs(fileOf(hostile.plan.instances.find((i) => i.step === "kubelet")!, "/opt/kubernetes/cfg/kubelet-config.yml")!)[0] as Record<string, unknown>;
    assert.equal(kubeletConfig.clusterDomain, "corp-1.internal");
    for (const inst of hostile.plan.instances) for (const f of inst.files) if (/\.(json|conflist)$/.test(f.path) && f.content) JSON.parse(f.content);
  });

  test("remote commands: bash -n, and each value arrives as one argument", () => {
    const work = tempDir("binkube-inert-sh-");
    const stubs = path.join(work, "stubs");
    fs.mkdirSync(stubs);
    const rec = path.join(work, "argv");
    // docker records its argv NUL-separated; sha256sum is the real one.
    fs.writeFileSync(path.join(stubs, "docker"), `#!/bin/sh\nprintf '%s\\0' "$@" >> '${rec}'\n`, { mode: 0o755 });
    const archive = path.join(work, HOSTILE_ARCHIVE);
    fs.writeFileSync(archive, "archive bytes");
    const runtime = hostile.plan.instances.find((i) => i.step === "runtime")!;
    const shipped = runtime.files.find((f) => f.path.startsWith("/opt/kubernetes/images/"))!;
    assert.equal(path.basename(shipped.path), HOSTILE_ARCHIVE, "the archive keeps its name on the host");
    const cmd = loadArchiveCommand(archive, "docker load -q -i");
    assert.equal(spawnSync("bash", ["-n", "-c", cmd]).status, 0, "bash -n");
    const run = () => execFileSync("sh", ["-c", cmd], { cwd: work, env: { ...process.env, PATH: `${stubs}:${process.env.PATH}` } }).toString();
    assert.equal(run().trim(), "loaded");
    assert.deepEqual(fs.readFileSync(rec, "utf8").split("\0").filter(Boolean), ["load", "-q", "-i", archive]);
    assert.equal(run().trim(), "", "the marker holds the loaded content: no second load");
    assert.ok(!fs.existsSync(path.join(work, "pwned")) && !fs.existsSync(path.join(work, "pwned2")), "no substitution ran");
    // The file sync's own scripts with that name, run for real in a scratch root.
    const target = path.join(work, "root", "opt", HOSTILE_ARCHIVE);
    const [prepared] = prepareFiles("h", "t", [{ path: target, mode: 0o644, content: "x" }]);
    const check = buildCheckScript([prepared!]);
    assert.equal(spawnSync("bash", ["-n", "-c", check]).status, 0);
    execFileSync("sh", ["-c", check], { cwd: work });
    const temp = `${target}.tmp`;
    fs.writeFileSync(temp, "x");
    execFileSync("sh", ["-c", buildFinalizeScript([{ file: prepared!, temp }], { fsync: false })], { cwd: work });
    assert.deepEqual(fs.readdirSync(path.dirname(target)), [HOSTILE_ARCHIVE]);
    assert.deepEqual(fs.readdirSync(work).sort(), ["argv", HOSTILE_ARCHIVE, `${HOSTILE_ARCHIVE}.loaded`, "root", "stubs"].sort(), "nothing else was created (the marker beside the archive)");
  });

  test("cdk.tf.json: local-exec runs binkube with the intended argv, as Terraform reads the string", () => {
    const work = tempDir("binkube-inert-tf-");
    const rec = path.join(work, "argv");
    const recorder = path.join(work, "binkube recorder $(x)");
    fs.writeFileSync(recorder, `#!/bin/sh\nprintf '%s\\0' "$@" > '${rec}'\n`, { mode: 0o755 });
    const stack = new ClusterStack(Testing.app({ outdir: tempDir("binkube-cdktf-") }), "inert", hostile, { binkube: [recorder] });
    const json = JSON.parse(Testing.synth(stack)) as { resource: Record<string, Record<string, { provisioner: { "local-exec": { command: string } }[]; triggers_replace: Record<string, string> }>> };
    const resources = Object.values(json.resource)[0]!;
    // Terraform's template escapes: $${ is a literal ${, %%{ a literal %{; an unescaped one would be evaluated.
    const asTerraformReads = (s: string) => {
      assert.doesNotMatch(s.replace(/\$\$\{|%%\{/g, ""), /\$\{|%\{/, `unescaped template sequence in ${s}`);
      return s.replace(/\$\$\{/g, "${").replace(/%%\{/g, "%{");
    };
    assert.ok(hostile.inv.hosts.every((h) => resources[teardownId(h)]), "every host's teardown resource");
    for (const [id, r] of Object.entries(resources)) {
      for (const k of Object.keys(r.triggers_replace)) asTerraformReads(k);
      const command = asTerraformReads(r.provisioner[0]!["local-exec"].command);
      execFileSync("sh", ["-c", command]);
      const argv = fs.readFileSync(rec, "utf8").split("\0").filter(Boolean);
      const torn = hostile.inv.hosts.find((h) => teardownId(h) === id);
      if (torn) {
        // a host's teardown resource: its destroy-time command, with the same quoting
        assert.deepEqual(argv, ["teardown", "--host", torn.name, "--config", hostile.inv.file], id);
        continue;
      }
      const inst = hostile.plan.instances.find((i) => i.id === id)!;
      assert.deepEqual(argv, ["step", inst.step, "--host", inst.host.name, "--config", hostile.inv.file, "--hash", inst.hash, ...(inst.firstBringUp ? ["--first-bring-up"] : [])], id);
    }
    const archiveKey = Object.keys(resources[hostile.plan.instances.find((i) => i.step === "runtime")!.id]!.triggers_replace).find((k) => k.includes("/images/"))!;
    assert.equal(asTerraformReads(archiveKey), `/opt/kubernetes/images/${HOSTILE_ARCHIVE}`);
  });
});
