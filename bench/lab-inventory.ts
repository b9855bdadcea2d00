// Edits the benchmarks make to a lab's inventory (lab up writes its own default roles).
import * as fs from "node:fs";

/** The inventory with host `name` turned into a plain node (lab up gives a new third host etcd too). */
export function asPlainNode(inv: string, name: string): void {
  const text = fs.readFileSync(inv, "utf8").replace(new RegExp(String.raw`(- name: ${name}\n\s+address: \S+\n\s+roles: )\[[^\]]*\]`), "$1[node]");
  if (!new RegExp(String.raw`- name: ${name}\n\s+address: \S+\n\s+roles: \[node\]\n`).test(text)) throw new Error(`${name} is not a plain node in ${inv}`);
  fs.writeFileSync(inv, text);
}
