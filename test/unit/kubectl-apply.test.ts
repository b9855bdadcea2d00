// kubectlApply: an apply that met an etcd election is applied again; anything else fails at once.
// A fake remote on a fake clock (unit test): the real apply runs in the cluster e2e.
import assert from "node:assert/strict";
import { test } from "node:test";
import { kubectlApply } from "../../src/steps/actions";
import { RemoteError } from "../../src/remote/errors";
import type { StepRemote } from "../../src/steps/types";
import { withClock } from "../../src/util/clock";
import { FakeClock } from "../helpers/fake-clock";

/** Fails with the given stderrs in turn, then applies; `at` is when (clock ms) each try came. */
function remoteFailing(stderrs: string[], clock = new FakeClock()): StepRemote & { commands: string[]; at: number[] } {
  const commands: string[] = [];
  const at: number[] = [];
  return {
    commands,
    at,
    exec: async (command) => {
      commands.push(command);
      at.push(clock.now());
      const stderr = stderrs[commands.length - 1];
      if (stderr === undefined) return { code: 0, stdout: "applied", stderr: "" };
      throw new RemoteError("lab1", `command failed with exit code 1: kubectl apply`, { kind: "exec", command, exitCode: 1, stderr });
    },
    fetchFile: async () => {
      throw new Error("not used");
    },
  };
}

const LEADER = 'Error from server: error when retrieving current configuration of: ... from server for: "/opt/kubernetes/manifests/pod-security.yaml": etcdserver: leader changed';

test("an apply that met an etcd leader change is applied again, the same apply", async () => {
  const clock = new FakeClock();
  const remote = remoteFailing([LEADER], clock);
  await withClock(clock, () => kubectlApply(remote, "-f /opt/kubernetes/manifests/a.yaml"));
  assert.equal(remote.commands.length, 2);
  assert.equal(remote.at[1]! - remote.at[0]!, 2000, "tried again 2 s later");
  assert.equal(remote.commands[0], remote.commands[1]);
  assert.match(remote.commands[0]!, / apply -f \/opt\/kubernetes\/manifests\/a\.yaml$/);
});

test("any other failure is thrown at once; an election error the third time is thrown", async () => {
  const invalid = remoteFailing(['error: error validating "a.yaml": unknown field "foo"']);
  await assert.rejects(kubectlApply(invalid, "-f a.yaml"), /exit code 1/);
  assert.equal(invalid.commands.length, 1);
  const clock = new FakeClock();
  const stuck = remoteFailing([LEADER, "etcdserver: request timed out", LEADER], clock);
  await assert.rejects(withClock(clock, () => kubectlApply(stuck, "-f a.yaml")), (e: RemoteError) => /leader changed/.test(e.stderr ?? ""));
  assert.equal(stuck.commands.length, 3);
});
