// waitFor on an injected clock: the deadline, the poll interval and the progress lines follow the
// clock it is given, so a gate that times out after minutes costs a unit test no wall time.
import assert from "node:assert/strict";
import { test } from "node:test";
import { clock, realClock, withClock } from "../../src/util/clock";
import { GateError, waitFor } from "../../src/util/wait";
import { FakeClock } from "../helpers/fake-clock";

test("a gate that never passes times out after its clock's 120 s, polling each interval, without waiting them", async () => {
  const fake = new FakeClock();
  const t0 = fake.now();
  const wall = Date.now();
  let polls = 0;
  const lines: string[] = [];
  const gate = withClock(fake, () =>
    waitFor("x healthy", async () => `poll ${++polls}`, { timeoutMs: 120_000, intervalMs: 1000, log: (l) => lines.push(l), fix: "check x" }),
  );
  await assert.rejects(gate, (e: Error) => e instanceof GateError && /^timed out after 120 s waiting for x healthy \(last state: poll \d+\)\. check x$/.test(e.message));
  assert.ok(fake.now() - t0 > 120_000 && fake.now() - t0 <= 122_000, `clock time ${fake.now() - t0} ms`);
  assert.ok(polls >= 120 && polls <= 122, `${polls} polls`);
  assert.equal(lines.length, 12, `a progress line every 10 s:\n${lines.join("\n")}`);
  assert.ok(Date.now() - wall < 5000, "the wait took wall time");
});

test("concurrent waits share one clock and wake in order; outside withClock the clock is the real one", async () => {
  const fake = new FakeClock();
  const woke: string[] = [];
  await withClock(fake, () => Promise.all([clock().sleep(3000).then(() => woke.push(`a ${fake.now()}`)), clock().sleep(1000).then(() => woke.push(`b ${fake.now()}`))]));
  const t = fake.now() - 3000;
  assert.deepEqual(woke, [`b ${t + 1000}`, `a ${t + 3000}`]);
  assert.equal(clock(), realClock);
});
