// Handlebars rendering of templates/: noEscape (these are config files, not HTML) and strict
// (a missing variable is an error). Data is checked for undefined/null values first, because
// strict mode does not see a missing key under #if / #each.
//
// A template never prints a value raw: every {{…}} goes through one of the destination helpers
// below, which checks the value against the grammar of where it lands (and quotes it for YAML).
// compile() refuses a template with a bare {{value}}, so the rule holds for templates not yet written.
import * as fs from "node:fs";
import * as path from "node:path";
import Handlebars from "handlebars";
import { calendarEvent, dnsName, flagWord } from "../inventory/grammar";
import { yamlScalar } from "./yaml-scalar";
import { encodedRef } from "../pki/refs";
import { BinkubeError } from "../errors";

import { TEMPLATES_DIR } from "../paths";

export { TEMPLATES_DIR };

const hb = Handlebars.create();
const compiled = new Map<string, { tpl: Handlebars.TemplateDelegate; params: Map<string, string> }>();
/** Where render() notes template names while templatesRenderedBy() runs. */
let rendered: Set<string> | undefined;


const HELPERS: Record<string, (v: unknown) => string> = {
  /** One word of a flags file or EnvironmentFile value: no whitespace, quotes, backslash or '$'. */
  word: (v) => {
    const text = scalar(v, "word");
    const bad = flagWord(text);
    if (bad) throw new BinkubeError(`"${text}" ${bad}`);
    return text;
  },
  /** A YAML (or JSON) scalar: plain when it reads back as the same string, else double-quoted (a leaf reference: resolved so). */
  yaml: (v) => (typeof v === "string" && encodedRef(v, "yaml")) || yamlScalar(typeof v === "number" || typeof v === "boolean" ? v : scalar(v, "yaml")),
  /** A JSON value (a file or block that a JSON parser reads): always JSON-encoded. */
  json: (v) => JSON.stringify(typeof v === "number" || typeof v === "boolean" ? v : scalar(v, "json")),
  /** A whole number (ports, counts, limits). */
  int: (v) => {
    if (typeof v !== "number" || !Number.isInteger(v)) throw new BinkubeError(`${JSON.stringify(v)} is not a whole number`);
    return String(v);
  },
  /** A systemd calendar event (a timer's OnCalendar=). */
  calendar: (v) => {
    const text = scalar(v, "calendar");
    const bad = calendarEvent(text);
    if (bad) throw new BinkubeError(`"${text}" is not a calendar event: it ${bad}`);
    return text;
  },
  /** A DNS name in a config language of its own (the Corefile). */
  dns: (v) => {
    const text = scalar(v, "dns");
    const bad = dnsName(text);
    if (bad) throw new BinkubeError(`"${text}" is not a DNS name: it ${bad}`);
    return text;
  },
};
/** The parameter each {{helper param}} names, by "line:column", for the template being rendered. */
let paramNames = new Map<string, string>();
for (const [name, fn] of Object.entries(HELPERS)) {
  hb.registerHelper(name, (v: unknown, options: { loc?: hbs.AST.SourceLocation }) => {
    const at = `${options.loc?.start.line}:${options.loc?.start.column}`;
    if (v === undefined || v === null) throw new BinkubeError(`value "${paramNames.get(at) ?? "?"}" (line ${options.loc?.start.line}) is missing`);
    try {
      return fn(v);
    } catch (e) {
      throw new BinkubeError(`value "${paramNames.get(at) ?? "?"}" (line ${options.loc?.start.line}): ${(e as Error).message}`);
    }
  });
}

function scalar(v: unknown, helper: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new BinkubeError(`{{${helper}}} got ${Array.isArray(v) ? "a list" : typeof v}, not a scalar`);
}

type Node = hbs.AST.Node & { body?: Node[]; program?: Node; inverse?: Node; path?: { original: string }; params?: { original?: string }[]; loc?: hbs.AST.SourceLocation };

/** Every {{…}} of a template: those without a destination helper (`raw`), and each helper's parameter by position. */
function prints(node: Node, out = { raw: [] as string[], params: new Map<string, string>() }) {
  if (node.type === "MustacheStatement") {
    const helper = node.path?.original ?? "";
    if (!(helper in HELPERS) || node.params?.length !== 1) out.raw.push(`line ${node.loc?.start.line}: {{${helper}${node.params?.length ? " …" : ""}}}`);
    else out.params.set(`${node.loc?.start.line}:${node.loc?.start.column}`, node.params[0]!.original ?? "?");
  }
  for (const child of [...(node.body ?? []), node.program, node.inverse]) if (child) prints(child, out);
  return out;
}

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
  if (hole) throw new BinkubeError(`template ${name}: value "${hole}" is missing (undefined or null)`);
  let entry = compiled.get(name);
  if (!entry) {
    const file = path.join(TEMPLATES_DIR, `${name}.hbs`);
    const text = fs.readFileSync(file, "utf8");
    const found = prints(hb.parse(text) as Node);
    if (found.raw.length > 0) throw new BinkubeError(`template ${name} prints values raw (${found.raw.join(", ")}): wrap each in a destination helper: ${Object.keys(HELPERS).join(", ")}`);
    entry = { tpl: hb.compile(text, { noEscape: true, strict: true }), params: found.params };
    compiled.set(name, entry);
  }
  rendered?.add(name);
  paramNames = entry.params;
  try {
    return entry.tpl(data);
  } catch (e) {
    throw new BinkubeError(`template ${name}: ${(e as Error).message}`);
  }
}

/** The templates `fn` renders, and only those (tests check that every template is some step's). */
export function templatesRenderedBy(fn: () => void): string[] {
  const outer = rendered;
  const mine = new Set<string>();
  rendered = mine;
  try {
    fn();
  } finally {
    rendered = outer;
    for (const t of mine) outer?.add(t);
  }
  return [...mine].sort();
}

/** Every template file, for tests that check each one is used. */
export function listTemplates(): string[] {
  const out: string[] = [];
  for (const dir of fs.readdirSync(TEMPLATES_DIR)) {
    for (const f of fs.readdirSync(path.join(TEMPLATES_DIR, dir))) if (f.endsWith(".hbs")) out.push(`${dir}/${f.slice(0, -4)}`);
  }
  return out.sort();
}
