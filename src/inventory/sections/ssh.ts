// ssh: (and hosts[].ssh:): how binkube logs in. A host's block inherits the top-level one field by
// field. The files it names are checked by the local-file pass (inventory/local-files.ts).
import { dnsName, hostAddress } from "../grammar";
import { Obj, Reader, join } from "../reader";
import type { SshSettings } from "../types";
import { isIPv4 } from "../../util/ip";
import { LocalFile, expandPath } from "./common";

const SSH_FIELDS = ["user", "port", "privateKey", "knownHosts", "hostKeyFingerprints", "sudo", "bastion"] as const;

/** One ssh block at `p` ("ssh" or "hosts[N].ssh"); `base`: the top-level block it inherits from. */
export function readSsh(r: Reader, obj: Obj, p: string, baseDir: string, files: LocalFile[], base?: SshSettings): SshSettings {
  r.known(obj, SSH_FIELDS, p);
  const keyText = r.str(obj, "privateKey", p);
  const khText = r.str(obj, "knownHosts", p);
  const privateKey = keyText !== undefined ? expandPath(keyText, baseDir) : base?.privateKey;
  const knownHosts = khText !== undefined ? expandPath(khText, baseDir) : base?.knownHosts;
  if (keyText !== undefined) files.push({ field: join(p, "privateKey"), path: privateKey!, kind: "privateKey" });
  if (khText !== undefined) files.push({ field: join(p, "knownHosts"), path: knownHosts!, kind: "knownHosts" });
  const fingerprints = obj.hostKeyFingerprints !== undefined ? r.strList(obj, "hostKeyFingerprints", p) : base?.hostKeyFingerprints ?? [];
  fingerprints.forEach((f, i) => {
    if (!/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(f)) r.error(`${join(p, "hostKeyFingerprints")}[${i}]`, `"${f}" is not a SHA256 fingerprint`, "copy it from `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` (SHA256:…)");
  });
  let bastion = base?.bastion;
  if (obj.bastion !== undefined) {
    const b = r.section(obj, "bastion", p);
    const bp = join(p, "bastion");
    r.known(b, ["address", "port", "user", "privateKey"], bp);
    const address = r.str(b, "address", bp, "");
    if (!address) r.error(join(bp, "address"), "is required", "set the jump host's address");
    if (address && (isIPv4(address) ? hostAddress(address) : dnsName(address))) r.error(join(bp, "address"), `"${address}" ${isIPv4(address) ? hostAddress(address) : `is not an address or DNS name: it ${dnsName(address)}`}`, "set the jump host's address or DNS name");
    const bkey = r.str(b, "privateKey", bp);
    if (bkey !== undefined) files.push({ field: join(bp, "privateKey"), path: expandPath(bkey, baseDir), kind: "bastionKey" });
    bastion = { address, port: r.int(b, "port", bp, 22, 1, 65535), user: r.str(b, "user", bp, base?.user ?? "root"), privateKey: bkey ? expandPath(bkey, baseDir) : privateKey };
  }
  const user = r.str(obj, "user", p, base?.user ?? "root");
  if (!/^[a-z_][a-z0-9_-]*[$]?$/.test(user)) r.error(join(p, "user"), `"${user}" is not a valid user name`, "use a POSIX login name such as root or ubuntu");
  return {
    user,
    port: r.int(obj, "port", p, base?.port ?? 22, 1, 65535),
    privateKey,
    knownHosts,
    hostKeyFingerprints: fingerprints,
    // A host that overrides the user gets that user's sudo default, not the inherited one.
    sudo: r.bool(obj, "sudo", p, obj.user === undefined && base ? base.sudo : user !== "root"),
    bastion,
  };
}
