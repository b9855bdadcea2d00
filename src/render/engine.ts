// Handlebars rendering of templates/: noEscape (these are config files, not HTML) and strict
// (a missing variable is an error). Data is checked for undefined/null values first, because
// strict mode does not see a missing key under #if / #each.
import * as fs from "node:fs";
import * as path from "node:path";
import Handlebars from "handlebars";

export const TEMPLATES_DIR = path.resolve(__dirname, "..", "..", "templates");

const hb = Handlebars.create();
const compiled = new Map<string, Handlebars.TemplateDelegate>();
const used = new Set<string>();

export class RenderError extends Error {}

function findHole(value: unknown, at: string): string | undefined {
  if (value === undefined || value === null) return at;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hole = findHole(value[i], `${at}[${i}]`);
      if (hole) return hole;
    }
  } else if (typeof value === "object") {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const hole = findHole(v, at ? `${at}.${k}` : k);
      if (hole) return hole;
    }
  }
  return undefined;
}

/** Renders templates/<name>.hbs with data; `name` is e.g. "etcd/etcd.conf". */
export function render(name: string, data: Record<string, unknown>): string {
  const hole = findHole(data, "");
  if (hole) throw new RenderError(`template ${name}: value "${hole}" is missing (undefined or null)`);
  let tpl = compiled.get(name);
  if (!tpl) {
    const file = path.join(TEMPLATES_DIR, `${name}.hbs`);
    tpl = hb.compile(fs.readFileSync(file, "utf8"), { noEscape: true, strict: true });
    compiled.set(name, tpl);
  }
  used.add(name);
  try {
    return tpl(data);
  } catch (e) {
    throw new RenderError(`template ${name}: ${(e as Error).message}`);
  }
}

/** Templates rendered so far in this process (tests check that none is dead). */
export function usedTemplates(): string[] {
  return [...used].sort();
}

/** Every template file, for tests that check each one is used. */
export function listTemplates(): string[] {
  const out: string[] = [];
  for (const dir of fs.readdirSync(TEMPLATES_DIR)) {
    for (const f of fs.readdirSync(path.join(TEMPLATES_DIR, dir))) if (f.endsWith(".hbs")) out.push(`${dir}/${f.slice(0, -4)}`);
  }
  return out.sort();
}
