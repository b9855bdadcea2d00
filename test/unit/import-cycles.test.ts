// No import cycle in src/ or stacks/, type-only imports included: a cycle means two modules that
// cannot be read (or tested) one without the other, and type cycles become value cycles later.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

const ROOT = path.join(__dirname, "..", "..");

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

/** Relative imports of a module (import … from, import type, export … from, require, import()). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
  const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm)].map((m) => m[1]!);
  return specs.map((s) => {
    const base = path.resolve(path.dirname(file), s);
    for (const c of [`${base}.ts`, path.join(base, "index.ts"), base]) if (fs.existsSync(c) && fs.statSync(c).isFile()) return c;
    throw new Error(`${path.relative(ROOT, file)}: cannot resolve ${s}`);
  });
}

/** Strongly connected components with more than one module, or a module importing itself (Tarjan). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

test("the checker finds a cycle when there is one", () => {
  const g = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]]]);
  assert.deepEqual(cycles(g), [["a", "b", "c"]]);
  assert.deepEqual(cycles(new Map([["a", ["b"]], ["b", []]])), []);
});

test("no import cycle in src/ and stacks/ (type imports included)", () => {
  const files = [...sources(path.join(ROOT, "src")), ...sources(path.join(ROOT, "stacks")), path.join(ROOT, "main.ts")];
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((d) => files.includes(d))]));
  assert.ok([...graph.values()].some((d) => d.length > 0), "the graph has edges (the import pattern matches)");
  const found = cycles(graph).map((c) => c.map((f) => path.relative(ROOT, f)).join(" ↔ "));
  assert.deepEqual(found, [], `import cycles:\n${found.join("\n")}`);
});
