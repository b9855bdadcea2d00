// The inventory as YAML text, before and beside its values: bounds that keep the parser and every
// message safe (nesting depth, checked on the text, since the YAML parser itself overflows its
// stack at about 1000 levels; value sizes), and where each value came from (its line, and the
// source text of a scalar YAML read as a number or boolean), so an issue names its line and can
// say "1.10 would become 1.1".
import { Document, isAlias, isMap, isPair, isScalar, isSeq, Node, visit } from "yaml";
import { visible } from "./grammar";

/** Deeper than any inventory field (hosts[0].ssh.bastion.address is 4), far below the parser's limit. */
export const MAX_DEPTH = 20;
/** Longer than any value an inventory holds (a URL, a flag list), far below a pasted file. */
export const MAX_VALUE = 4096;
/** An inventory is a few kilobytes; a file much larger is not one. */
export const MAX_FILE = 1 << 20;

export interface SourceOf {
  line: number;
  /** The scalar as written, when YAML read it as something other than a string. */
  text?: string;
}

/**
 * The first place where the text nests deeper than MAX_DEPTH: block indentation (each `key:` or
 * `- ` one level further in) and flow brackets, outside quotes and comments. Undefined when none.
 */
export function tooDeep(text: string): { line: number; field: string } | undefined {
  const stack: { indent: number; key: string }[] = [];
  let flow = 0;
  let flowKey = "";
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!;
    if (flow === 0) {
      const m = /^( *)((?:- +)*)(.*)$/.exec(line)!;
      const body = m[3]!;
      if (body.trim() === "" || body.trimStart().startsWith("#")) continue;
      const indent = m[1]!.length;
      while (stack.length > 0 && stack[stack.length - 1]!.indent >= indent) stack.pop();
      const key = /^("[^"]*"|'[^']*'|[^\s:#][^:#]*?)\s*:(?:\s|$)/.exec(body)?.[1] ?? "";
      // each "- " on the line opens a sequence level; the key after them a mapping level
      const dashes = (m[2]!.match(/-/g) ?? []).length;
      for (let d = 0; d < dashes; d++) stack.push({ indent: indent + d * 2, key: "[]" });
      stack.push({ indent: indent + m[2]!.length, key });
      if (stack.length > MAX_DEPTH) return { line: n + 1, field: fieldOf(stack) };
      flowKey = fieldOf(stack);
    }
    let quote = "";
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (quote) {
        if (c === quote && !(quote === '"' && line[i - 1] === "\\")) quote = "";
      } else if (c === '"' || c === "'") quote = c;
      else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) break;
      else if (c === "[" || c === "{") {
        if (stack.length + ++flow > MAX_DEPTH) return { line: n + 1, field: flowKey };
      } else if ((c === "]" || c === "}") && flow > 0) flow--;
    }
  }
  return undefined;
}

const fieldOf = (stack: { key: string }[]): string =>
  stack.map((s) => s.key).filter(Boolean).reduce((at, k) => (k === "[]" ? `${at}[]` : at ? `${at}.${k}` : k), "").slice(0, 120);

const lineAt = (text: string, offset: number): number => {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
};

/**
 * Every value's path (as the reader names fields: `hosts[0].labels.rack`) → its line, and for a
 * scalar that YAML read as a number, boolean or null, the text as written. Also the first value
 * longer than MAX_VALUE.
 */
export function sources(doc: Document, text: string): { at: Map<string, SourceOf>; tooLong?: { field: string; line: number; length: number } } {
  const at = new Map<string, SourceOf>();
  let tooLong: { field: string; line: number; length: number } | undefined;
  const walk = (node: unknown, path: string): void => {
    if (!node || isAlias(node)) return;
    const n = node as Node;
    const line = n.range ? lineAt(text, n.range[0]) : 0;
    if (isMap(n)) {
      at.set(path, { line });
      for (const pair of n.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : "?";
        walk(pair.value, path ? `${path}.${visible(key)}` : visible(key));
      }
    } else if (isSeq(n)) {
      at.set(path, { line });
      n.items.forEach((item, i) => walk(item, `${path}[${i}]`));
    } else if (isScalar(n)) {
      const raw = n.range ? text.slice(n.range[0], n.range[1]) : "";
      at.set(path, typeof n.value === "string" ? { line } : { line, text: raw });
      if (!tooLong && typeof n.value === "string" && n.value.length > MAX_VALUE) tooLong = { field: path || "(top)", line, length: n.value.length };
    }
  };
  walk(doc.contents, "");
  return { at, tooLong };
}

/** The line of the alias that multiplies the most: an alias whose anchor holds aliases itself (the bomb's fuse), else the first alias. */
export function bombLine(doc: Document, text: string): number | undefined {
  let first: number | undefined;
  let nested: number | undefined;
  visit(doc, {
    Alias(_k, alias) {
      const line = alias.range ? lineAt(text, alias.range[0]) : undefined;
      first ??= line;
      const target = alias.resolve(doc);
      let holds = false;
      if (target) visit(target as Node, { Alias: () => ((holds = true), visit.BREAK) });
      if (holds && nested === undefined) nested = line;
    },
  });
  return nested ?? first;
}
