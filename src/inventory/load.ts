// Parses and validates cluster.yaml into a normalized Inventory. Every mistake in the file is
// reported at once (field, problem, fix) and nothing is written before validation passes.
import * as fs from "node:fs";
import * as path from "node:path";
import { isNode, parseDocument, visit } from "yaml";
import { noInvisible, visible } from "./grammar";
import { checkLocalFiles } from "./local-files";
import { Obj, Reader, isObj, join } from "./reader";
import { checkRules } from "./rules";
import { readApiserver } from "./sections/apiserver";
import { readBinaries } from "./sections/binaries";
import { readCluster, readEtcd, readKubernetes } from "./sections/cluster";
import type { LocalFile } from "./sections/common";
import { readComponents } from "./sections/components";
import { readHosts } from "./sections/hosts";
import { readImages } from "./sections/images";
import { readKubelet } from "./sections/kubelet";
import { readNetwork } from "./sections/network";
import { readCertificates, readRolling, readState } from "./sections/operations";
import { readSsh } from "./sections/ssh";
import { MAX_DEPTH, MAX_FILE, MAX_VALUE, bombLine, sources, tooDeep } from "./yaml-source";
import { Inventory, InventoryIssue } from "./types";

export const DEFAULT_CONFIG = "./cluster.yaml";


export class InventoryError extends Error {
  constructor(
    readonly file: string,
    readonly issues: InventoryIssue[],
  ) {
    super(formatIssues(file, issues));
    this.name = "InventoryError";
  }
}

export function formatIssues(file: string, issues: InventoryIssue[], kind = "error"): string {
  const lines = issues.map((i) => `  ${kind}: ${i.line ? `line ${i.line}: ` : ""}${i.field}: ${i.message} — fix: ${i.fix}`);
  const head = kind === "error" ? `${file}: ${issues.length} problem${issues.length === 1 ? "" : "s"}, nothing was written:` : `${file}:`;
  return [head, ...lines].join("\n");
}

const TOP = ["cluster", "kubernetes", "etcd", "ssh", "hosts", "network", "binaries", "runtime", "cni", "certificates", "apiserver", "engine", "images", "kubelet", "kubeProxy", "rolling", "state", "addons"] as const;
/** Aliases a document may expand: enough for shared ssh settings, far too few for an alias bomb. */
const MAX_ALIASES = 100;

export interface LoadResult {
  inventory: Inventory;
  warnings: InventoryIssue[];
}

/** Reads the inventory path from BINKUBE_CONFIG (default ./cluster.yaml). */
export function configPathFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.BINKUBE_CONFIG || DEFAULT_CONFIG);
}

export function loadInventory(file: string): LoadResult {
  const abs = path.resolve(file);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(abs);
  } catch (e) {
    throw new InventoryError(abs, [{ field: "(file)", message: `cannot read: ${(e as Error).message}`, fix: "set BINKUBE_CONFIG or --config to an existing cluster.yaml (see examples/)" }]);
  }
  return parseInventory(decodeUtf8(bytes, abs), abs);
}

/** The inventory is UTF-8, nothing else: a UTF-16 file or stray Latin-1 bytes are named, not guessed at. */
function decodeUtf8(bytes: Buffer, file: string): string {
  const fail = (message: string, fix: string) => new InventoryError(file, [{ field: "(file)", message, fix }]);
  const utf16 = (bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff) || (bytes.length > 1 && (bytes[0] === 0 || bytes[1] === 0));
  if (utf16) throw fail("is UTF-16 (or UTF-32) encoded; binkube reads UTF-8 only", `convert it: iconv -f UTF-16 -t UTF-8 ${path.basename(file)} > cluster.utf8.yaml`);
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const line = bytes.subarray(0, at).toString("latin1").split("\n").length;
    throw fail(`is not valid UTF-8 (byte 0x${bytes[at]?.toString(16)} at line ${line}, offset ${at}); binkube reads UTF-8 only`, "save the file as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8), or remove the non-ASCII byte");
  }
}

/** Offset of the first byte that does not start or continue a well-formed UTF-8 sequence. */
function firstInvalidUtf8(bytes: Buffer): number {
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    const len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (len === 0) return i;
    for (let k = 1; k < len; k++) if (i + k >= bytes.length || (bytes[i + k]! & 0xc0) !== 0x80) return i;
    i += len;
  }
  return bytes.length - 1;
}

export function parseInventory(text: string, file: string): LoadResult {
  if (text.length > MAX_FILE) throw new InventoryError(file, [{ field: "(file)", message: `is ${text.length} characters long; an inventory is a few kilobytes (at most ${MAX_FILE})`, fix: "check that this is the inventory, not a file pasted into it" }]);
  const deep = tooDeep(text);
  if (deep) throw new InventoryError(file, [{ field: deep.field || "(yaml)", line: deep.line, message: `nests more than ${MAX_DEPTH} levels deep (no inventory field is deeper than 5)`, fix: "remove the nesting: a value here is a string, a list of strings or a mapping of them" }]);
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  const lineOf = (pos?: { line: number }[]) => `(yaml line ${pos?.[0]?.line ?? "?"})`;
  const yamlIssues: InventoryIssue[] = doc.errors.map((e) => ({ field: lineOf(e.linePos), message: e.message.split("\n")[0]!, fix: "fix the YAML syntax" }));
  // An unknown tag (!env, !!binary …) would be dropped or reinterpreted silently: none is supported.
  visit(doc, (_key, node) => {
    if (isNode(node) && node.tag && node.range) {
      const line = text.slice(0, node.range[0]).split("\n").length;
      yamlIssues.push({ field: `(yaml line ${line})`, message: `the tag ${node.tag} is not supported (binkube reads plain YAML: no tags, no environment lookups)`, fix: "remove the tag and write the value itself" });
    }
  });
  for (const w of doc.warnings) yamlIssues.push({ field: lineOf(w.linePos), message: w.message.split("\n")[0]!, fix: "write plain YAML without tags" });
  if (yamlIssues.length > 0) throw new InventoryError(file, yamlIssues);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (e) {
    const line = bombLine(doc, text);
    throw new InventoryError(file, [{ field: line ? `(yaml line ${line})` : "(yaml)", line, message: `aliases expand too far (${(e as Error).message.split("\n")[0]}; the limit is ${MAX_ALIASES})`, fix: `write the repeated settings out, or use fewer *alias references${line ? ` (an alias of an anchor that holds aliases itself, at line ${line}, multiplies them)` : ""}` }]);
  }
  const { at, tooLong } = sources(doc, text);
  if (tooLong) throw new InventoryError(file, [{ field: tooLong.field, line: tooLong.line, message: `is ${tooLong.length} characters long (at most ${MAX_VALUE})`, fix: "check the value: no inventory field holds more than a URL or a flag list" }]);
  const r = new Reader(at);
  checkInvisible(r, raw, "");
  if (!isObj(raw)) {
    r.error("(top)", "the inventory must be a mapping with at least a hosts: list", "start from examples/guide-two-hosts.yaml");
    throw new InventoryError(file, r.issues);
  }
  const inv = validate(raw, file, r);
  if (r.issues.length > 0) throw new InventoryError(file, r.issues);
  return { inventory: inv, warnings: r.warnings };
}

/** Every key and string value, however deep: no control characters, byte-order marks or bidi overrides. */
function checkInvisible(r: Reader, v: unknown, at: string): void {
  if (typeof v === "string") {
    const bad = noInvisible(v);
    if (bad) r.error(at || "(top)", `the value ${bad}`, "retype the value: no field of the inventory holds control or invisible characters");
  } else if (Array.isArray(v)) v.forEach((x, i) => checkInvisible(r, x, `${at}[${i}]`));
  else if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      const bad = noInvisible(k);
      if (bad) r.error(join(at, visible(k)), `the key ${bad}`, "retype the key (a byte-order mark or control character hides inside it)");
      else checkInvisible(r, x, join(at, k));
    }
  }
}

/**
 * Each section read by its reader (inventory/sections/), then the rules across sections
 * (rules.ts), then the operator's files the inventory names (local-files.ts).
 */
function validate(raw: Obj, file: string, r: Reader): Inventory {
  const baseDir = path.dirname(file);
  r.known(raw, TOP, "");
  const files: LocalFile[] = [];
  const clusterName = readCluster(r, raw);
  const kubernetesVersion = readKubernetes(r, raw);
  const etcd = readEtcd(r, raw);
  const sshDefaults = readSsh(r, r.section(raw, "ssh", ""), "ssh", baseDir, files);
  const net = readNetwork(r, raw);
  const hostEntries = readHosts(r, raw, sshDefaults, baseDir, files);
  const hosts = hostEntries.map((e) => e.host);
  const binaries = readBinaries(r, raw, baseDir);
  const components = readComponents(r, raw);
  const { endpointHost, ...apiserver } = readApiserver(r, raw, hosts);
  const inv: Inventory = {
    file,
    baseDir,
    pkiDir: path.join(baseDir, "pki"),
    clusterName,
    kubernetesVersion,
    ...etcd,
    hosts,
    network: net.network,
    binaries,
    ...components,
    certificates: readCertificates(r, raw),
    apiserver,
    images: readImages(r, raw, baseDir, files),
    rolling: readRolling(r, raw),
    state: readState(r, raw, clusterName),
    kubelet: readKubelet(r, raw),
  };
  checkRules(r, { inv, hosts: hostEntries, net, endpointHost });
  checkLocalFiles(r, inv, files);
  return inv;
}
