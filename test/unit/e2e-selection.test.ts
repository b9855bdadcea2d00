// CI runs a selection of the e2e suite (BINKUBE_E2E_SELECTION=ci): every test it leaves out must
// name a test that CI does run and that carries its features. This reads every fullOnly(...) call
// in test/e2e and checks the named test exists and is not itself left out.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

const E2E = path.join(__dirname, "..", "e2e");
const CALL = /fullOnly\(\s*"([^"]+)",\s*"([^"]+)",\s*"([^"]+)"\s*\)/g;

interface LeftOut {
  in: string;
  file: string;
  test: string;
  why: string;
  /** The title of the test or describe the call is on (its line, up to the call). */
  line: string;
}

function leftOut(): LeftOut[] {
  const out: LeftOut[] = [];
  for (const f of fs.readdirSync(E2E).filter((n) => n.endsWith(".ts"))) {
    const text = fs.readFileSync(path.join(E2E, f), "utf8");
    for (const m of text.matchAll(CALL)) {
      const lineStart = text.lastIndexOf("\n", m.index) + 1;
      out.push({ in: f, file: m[1]!, test: m[2]!, why: m[3]!, line: text.slice(lineStart, m.index) });
    }
  }
  return out;
}

test("every test CI leaves out names an existing e2e test that CI runs, with the reason", () => {
  const all = leftOut();
  assert.ok(all.length >= 1, "no fullOnly() call found: the pattern no longer matches the code");
  for (const l of all) {
    const target = path.join(E2E, l.file);
    assert.ok(fs.existsSync(target), `${l.in}: fullOnly names ${l.file}, which does not exist`);
    const text = fs.readFileSync(target, "utf8");
    // a line with the title that is not a left-out test's own (nor a fullOnly call naming it)
    const lines = text.split("\n").filter((x) => x.includes(l.test));
    assert.ok(lines.length > 0, `${l.in}: fullOnly names "${l.test}", which is no title in ${l.file}`);
    assert.ok(lines.some((x) => !/fullOnly\(/.test(x)), `${l.in}: "${l.test}" in ${l.file} is itself left out of CI`);
    assert.ok(l.why.length > 20, `${l.in}: say how "${l.test}" covers it`);
  }
});
