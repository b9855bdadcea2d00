// `binkube render --out DIR`: writes the plan as DIR/<host>/<absolute path>, with file modes,
// so an operator can diff what each host receives against the guide.
import * as fs from "node:fs";
import * as path from "node:path";
import { BinaryIndex } from "../binaries/source";
import { Plan } from "../plan";
import { safeUrl } from "../inventory/grammar";

export interface TreeSummary {
  hosts: number;
  files: number;
  binariesLinked: number;
  binariesMissing: string[];
}

export function writeTree(plan: Plan, binaries: BinaryIndex, outDir: string): TreeSummary {
  const summary: TreeSummary = { hosts: 0, files: 0, binariesLinked: 0, binariesMissing: [] };
  const hosts = new Set<string>();
  for (const inst of plan.instances) {
    hosts.add(inst.host.name);
    for (const f of inst.files) {
      const target = path.join(outDir, inst.host.name, f.path);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.rmSync(target, { force: true });
      if (f.binary !== undefined) {
        const info = binaries.get(f.binary);
        if (info.present && info.localPath && fs.existsSync(info.localPath)) {
          fs.symlinkSync(info.localPath, target); // a link, not a 100 MB copy per host
          summary.binariesLinked++;
        } else {
          fs.writeFileSync(target, `# binary ${f.binary}: not available locally (${info.url ? safeUrl(info.url) : "missing from binaries.dir"})\n`, { mode: 0o644 });
          if (!summary.binariesMissing.includes(f.binary)) summary.binariesMissing.push(f.binary);
        }
      } else {
        fs.writeFileSync(target, f.content ?? "", { mode: f.mode });
        fs.chmodSync(target, f.mode);
      }
      summary.files++;
    }
  }
  summary.hosts = hosts.size;
  return summary;
}
