// Inventory host → SSH target for the remote executor.
import { Host } from "../inventory/types";
import { loadInventory } from "../inventory/load";
import { SshTarget } from "../remote";
import { BinkubeError } from "../errors";


export function sshTarget(host: Host): SshTarget {
  const s = host.ssh;
  if (!s.privateKey) {
    throw new BinkubeError(`host ${host.name}: no ssh.privateKey set; binkube needs a key file to connect (set ssh.privateKey in the inventory)`);
  }
  return {
    host: host.name,
    address: host.address,
    port: s.port,
    user: s.user,
    privateKeyPath: s.privateKey,
    knownHostsPath: s.knownHosts,
    hostKeyFingerprints: s.hostKeyFingerprints.length > 0 ? s.hostKeyFingerprints : undefined,
    sudo: s.sudo,
    bastion: s.bastion
      ? { host: `${host.name}-bastion`, address: s.bastion.address, port: s.bastion.port, user: s.bastion.user, privateKeyPath: s.bastion.privateKey ?? s.privateKey, knownHostsPath: s.knownHosts }
      : undefined,
  };
}

/** Every host of an inventory as an SSH target, skipping any binkube could not connect to anyway. */
export function inventoryTargets(configFile: string): SshTarget[] {
  return loadInventory(configFile).inventory.hosts.flatMap((h) => {
    try {
      return [sshTarget(h)];
    } catch {
      return [];
    }
  });
}
