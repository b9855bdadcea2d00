// A small typed reader over parsed YAML that records one issue per mistake instead of throwing,
// so an operator sees every problem in the file at once.
import { shown, visible } from "./grammar";
import type { SourceOf } from "./yaml-source";
import { InventoryIssue } from "./types";

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const score = editDistance(word.toLowerCase(), c.toLowerCase());
    if (score < bestScore) [best, bestScore] = [c, score];
  }
  return bestScore <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

export class Reader {
  readonly issues: InventoryIssue[] = [];
  readonly warnings: InventoryIssue[] = [];

  /** `sources`: where each value came from (yaml-source.ts), so an issue names its line. */
  constructor(private readonly sources: Map<string, SourceOf> = new Map()) {}

  error(field: string, message: string, fix: string): void {
    this.issues.push({ field, message, fix, line: this.lineOf(field) });
  }

  warn(field: string, message: string, fix: string): void {
    this.warnings.push({ field, message, fix, line: this.lineOf(field) });
  }

  /** The line of `field`, or of the nearest enclosing value the file has (a missing field's section). */
  private lineOf(field: string): number | undefined {
    for (let f = field; f; f = f.replace(/(?:\.[^.[\]]*|\[\d+\])$/, "")) {
      const line = this.sources.get(f)?.line;
      if (line) return line;
      if (!/[.[]/.test(f)) break;
    }
    return undefined;
  }

  /** A value that YAML read as a number, boolean or null where a string lands: refused, saying what it became. */
  private notString(field: string, v: unknown): void {
    const written = this.sources.get(field)?.text;
    const became = typeof v === "number" || typeof v === "boolean" ? describe(v) : undefined;
    const changed = written !== undefined && became !== undefined && written !== String(v);
    this.error(field, `must be a string, got ${describe(v)}${changed ? ` (written ${shown(written)})` : ""}`, written && became ? `quote it: ${field.split(".").pop()}: "${shown(written)}"${changed ? ` (unquoted, ${shown(written)} becomes ${typeof v === "number" && !Number.isFinite(v) ? describe(v) : String(v)})` : ""}` : "quote the value");
  }

  /** Reports keys that are not in `known` (typos), suggesting the closest known key. */
  known(obj: Obj, known: readonly string[], path: string): void {
    for (const key of Object.keys(obj)) {
      if (known.includes(key)) continue;
      const guess = closest(key, known);
      this.error(
        join(path, visible(key)),
        "unknown field",
        guess ? `did you mean "${guess}"?` : `remove it; known fields here: ${known.join(", ")}`,
      );
    }
  }

  section(parent: Obj, key: string, path: string): Obj {
    const v = parent[key];
    if (v === undefined || v === null) return {};
    if (!isObj(v)) {
      this.error(join(path, key), `must be a mapping, got ${describe(v)}`, `write it as "${key}:" followed by indented fields`);
      return {};
    }
    return v;
  }

  str(obj: Obj, key: string, path: string, fallback: string): string;
  str(obj: Obj, key: string, path: string, fallback?: undefined): string | undefined;
  str(obj: Obj, key: string, path: string, fallback?: string): string | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string") {
      this.notString(join(path, key), v);
      return fallback;
    }
    return v;
  }

  int(obj: Obj, key: string, path: string, fallback: number, min: number, max: number): number {
    const v = obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.error(join(path, key), `must be a whole number from ${min} to ${max}, got ${describe(v)}`, `set a value in ${min}..${max}`);
      return fallback;
    }
    return v;
  }

  bool(obj: Obj, key: string, path: string, fallback: boolean): boolean {
    const v = obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") {
      this.error(join(path, key), `must be true or false, got ${describe(v)}`, "write true or false without quotes");
      return fallback;
    }
    return v;
  }

  list(obj: Obj, key: string, path: string): unknown[] {
    const v = obj[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.error(join(path, key), `must be a list, got ${describe(v)}`, `write it as a YAML list ("- item" lines or [a, b])`);
      return [];
    }
    return v;
  }

  strList(obj: Obj, key: string, path: string): string[] {
    return this.list(obj, key, path).flatMap((item, i) => {
      if (typeof item === "string") return [item];
      this.notString(`${join(path, key)}[${i}]`, item);
      return [];
    });
  }

  strMap(obj: Obj, key: string, path: string): Record<string, string> {
    const v = obj[key];
    if (v === undefined || v === null) return {};
    if (!isObj(v)) {
      this.error(join(path, key), `must be a mapping of strings, got ${describe(v)}`, "write key: value lines");
      return {};
    }
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) {
      if (typeof val === "string") out[k] = val;
      else this.notString(join(join(path, key), visible(k)), val);
    }
    return out;
  }

  oneOf<T extends string>(obj: Obj, key: string, path: string, allowed: readonly T[], fallback: T): T {
    const v = this.str(obj, key, path);
    if (v === undefined) return fallback;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    const guess = closest(v, allowed);
    this.error(join(path, key), `"${v}" is not supported`, guess ? `did you mean "${guess}"? allowed: ${allowed.join(", ")}` : `use one of: ${allowed.join(", ")}`);
    return fallback;
  }
}

export function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

export function describe(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "number" && !Number.isFinite(v)) return Number.isNaN(v) ? "YAML's not-a-number .nan" : `YAML's ${v > 0 ? "" : "negative "}infinity ${v > 0 ? "" : "-"}.inf`;
  return `${typeof v} ${typeof v === "string" ? JSON.stringify(shown(v)) : JSON.stringify(v)}`;
}
