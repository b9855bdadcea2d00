// The pod network's CNI configuration, shared by the two steps that ship it: the kubelet (so that a
// node is Ready before flannel runs) and addons (flannel's install-cni container writes it too).
import { templated } from "./files";

/**
 * The CNI config, byte for byte the one flannel's install-cni container copies over it (addons
 * embeds this same text): with two owners writing different bytes, every kubelet re-run saw
 * drift and restarted the kubelet. The kubelet step ships it so a node is Ready before flannel.
 */
export const flannelCniConfig = () => templated("/etc/cni/net.d/10-flannel.conflist", "cni/10-flannel.conflist", {});
