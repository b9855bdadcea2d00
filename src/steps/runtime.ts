// runtime: docker from the static release (dockerd starts its own containerd), cgroup driver
// pinned to the kubelet's.
import { REQUIRED_DOCKER } from "../binaries/catalog";
import { hostsWithRole } from "../inventory/types";
import { binary, templated, unit } from "./files";
import { StepDef } from "./types";

export const CGROUP_DRIVER = "cgroupfs";

export const runtime: StepDef = {
  name: "runtime",
  scope: "host",
  description: "docker: binaries, daemon.json, unit",
  hosts: (inv) => hostsWithRole(inv, "node"),
  deps: [{ step: "prepare", on: "same-host" }],
  files: ({ binaries }) => {
    const names = [...new Set([...REQUIRED_DOCKER, ...binaries.group("docker")])].sort();
    return [
      ...names.map((n) => binary("/usr/bin", n)),
      templated("/etc/docker/daemon.json", "docker/daemon.json", { cgroupDriver: CGROUP_DRIVER }),
      unit("docker", "docker/docker.service"),
    ];
  },
};
