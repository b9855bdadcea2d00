// Where binkube's own files are. Sources run from the checkout (through tsx) or compiled into
// dist/ (bin/entry.cjs picks); both must find templates/, bin/ and lab/ at the package root,
// so the root is found by walking up to binkube's package.json, not by a fixed "../..".
import * as fs from "node:fs";
import * as path from "node:path";

function packageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    try {
      if ((JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string }).name === "binkube") return dir;
    } catch {
      // no package.json here, keep walking
    }
    if (path.dirname(dir) === dir) throw new Error(`binkube: no binkube package.json above ${from}`);
  }
}

export const PACKAGE_ROOT = packageRoot(__dirname);
export const TEMPLATES_DIR = path.join(PACKAGE_ROOT, "templates");
/** The CLI entry Terraform's local-exec runs for each step. */
export const CLI_ENTRY = path.join(PACKAGE_ROOT, "bin", "binkube.cjs");
