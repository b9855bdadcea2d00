// npm run conformance [-- --focus REGEX] [--skip REGEX] [--topology default|ha] [--smoke] [--keep] [--dir DIR]
//
// The Kubernetes v1.17.17 conformance suite against a cluster binkube builds: 3 lab hosts,
// `cdktf deploy`, then e2e.test run serially as the official conformance image runs it. Writes
// DIR/report/{e2e.log,junit_01.xml,summary.md}; prints progress (test N of M, elapsed, estimate)
// and the summary. Exit 0 only when every test that ran passed.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { labDown, labUp } from "../lab/lab";
import { ROOT, appendClusterSettings, clusterFixtures } from "../test/helpers/cluster";
import { CONFORMANCE_FOCUS, SMOKE_FOCUS, conformanceFixtures, parseJunit, progressLine, runConformance, setTopology, summarize } from "../test/helpers/conformance";
import { plain, run } from "../test/helpers/proc";

const USAGE = `usage: npm run conformance -- [options]
  --focus REGEX        ginkgo focus (default: \\[Conformance\\], all 280)
  --smoke              the smoke subset .ci/run runs (webhooks, CRD conversion, aggregator, DNS, proxy, Services, exec/logs)
  --skip REGEX         ginkgo skip
  --topology T         default: lab1 master + node; ha: lab1 a master that is not a node (default: ha)
  --dir DIR            lab and report directory (default: a new one under /tmp)
  --keep               leave the lab up afterwards (tear down: npx binkube lab down --dir DIR)`;

function args(argv: string[]) {
  const o = { focus: CONFORMANCE_FOCUS, skip: "", topology: "ha" as "default" | "ha", dir: "", keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === "--focus") o.focus = val();
    else if (a === "--smoke") o.focus = SMOKE_FOCUS;
    else if (a === "--skip") o.skip = val();
    else if (a === "--topology") {
      const t = val();
      if (t !== "default" && t !== "ha") throw new Error(`--topology is default or ha (got '${t}')`);
      o.topology = t;
    } else if (a === "--dir") o.dir = path.resolve(val());
    else if (a === "--keep") o.keep = true;
    else if (a === "--help" || a === "-h") (console.log(USAGE), process.exit(0));
    else throw new Error(`unknown option '${a}'\n${USAGE}`);
  }
  return o;
}

async function main(): Promise<number> {
  const o = args(process.argv.slice(2));
  const dir = o.dir || fs.mkdtempSync(path.join(os.tmpdir(), "binkube-conformance-"));
  const bin = path.join(dir, "bin");
  const images = path.join(dir, "images");
  const report = path.join(dir, "report");
  const t0 = Date.now();
  const say = (m: string) => console.log(`== conformance [${Math.round((Date.now() - t0) / 1000)} s]: ${m}`);

  say(`fixtures (cached: seconds; a first build takes about 25 min on 2 cores) into ${dir}`);
  await clusterFixtures(bin, images);
  await conformanceFixtures(bin, images);
  say("lab: 3 hosts");
  await labUp({ dir, hosts: 3, log: () => undefined });
  try {
    setTopology(path.join(dir, "cluster.yaml"), o.topology);
    appendClusterSettings(dir);
    say(`cdktf deploy (topology ${o.topology})`);
    const env = { ...process.env, BINKUBE_CONFIG: path.join(dir, "cluster.yaml"), CHECKPOINT_DISABLE: "1" };
    const d = await run("npx", ["cdktf", "deploy", "--auto-approve"], { env, cwd: ROOT, timeoutMs: 1_800_000 });
    fs.writeFileSync(path.join(dir, "deploy.log"), plain(d.stdout + d.stderr));
    if (d.code !== 0) {
      say(`deploy failed: ${dir}/deploy.log`);
      return 1;
    }
    say(`deployed in ${Math.round(d.ms / 1000)} s; e2e.test --ginkgo.focus='${o.focus}'${o.skip ? ` --ginkgo.skip='${o.skip}'` : ""}`);
    const e2e = await runConformance({
      bin,
      kubeconfig: path.join(dir, "admin.kubeconfig"),
      reportDir: report,
      focus: o.focus,
      skip: o.skip || undefined,
      timeoutMs: 4 * 3600_000,
      onProgress: (p, ms) => p.completed > 0 && say(progressLine(p, ms)),
    });
    if (!fs.existsSync(e2e.junit)) {
      say(`e2e.test exited ${e2e.code} without a junit report: ${e2e.log}`);
      return 1;
    }
    const s = summarize(parseJunit(fs.readFileSync(e2e.junit, "utf8")), { focus: o.focus, wallMs: e2e.ms, topology: o.topology });
    fs.writeFileSync(path.join(report, "summary.md"), s.text);
    console.log(`\n${s.text}`);
    say(`report: ${report}/summary.md (log ${e2e.log})`);
    return s.failed === 0 && s.passed > 0 && e2e.code === 0 ? 0 : 1;
  } finally {
    if (o.keep) say(`lab kept: KUBECONFIG=${dir}/admin.kubeconfig; tear down: npx binkube lab down --dir ${dir}`);
    else await labDown({ dir, log: () => undefined });
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`conformance: ${e.message}`);
    process.exit(2);
  },
);
