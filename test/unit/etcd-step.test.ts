// The etcd step's decisions, against a scripted fake host (the lab e2e runs the same code on real
// etcd): restart or not, snapshot first, leadership hand-off before a leader restarts, joining an
// existing cluster with `member add` (retried while etcd says "unhealthy cluster").
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { etcd } from "../../src/steps/etcd";
import { parseEndpointHealth } from "../../src/steps/etcdctl";
import type { PlannedFile } from "../../src/steps/types";
import { Rule, scriptedHost } from "../helpers/scripted-host";

const CONF = "/opt/etcd/cfg/etcd.conf";
const conf = (cluster: string, extra = "") => `ETCD_NAME="k8s-master"\nETCD_INITIAL_CLUSTER="${cluster}"\n${extra}`;

/** The etcd member on k8s-master: its files, the paths its sync uploads, and the answers of every host. */
const fakeHost = (rules: Rule[], sync: { changed: string[] }, files: PlannedFile[], firstBringUp = false) => scriptedHost({ rules, changed: sync.changed, files, firstBringUp });

/**
 * The unit probe (steps/unit-probe.ts) of etcd: its state, and optionally a start time and the
 * files' mtimes (epoch seconds) so the member is older than some of them.
 */
const probe = (state: string, opts: { started?: string; mtimes?: (n: number) => [number, string][] } = {}): Rule => [
  /^printf 'U %s A %s\\n' etcd /,
  (_c, n) => ({ stdout: [`U etcd A ${state}`, "U etcd E enabled", `U etcd T ${opts.started ?? ""}`, ...(opts.mtimes?.(n) ?? []).map(([t, p]) => `F ${t} ${p}`)].join("\n") }),
];
/** 2026-12-04 22:00:00 UTC, as systemd prints it and as epoch seconds (+ minutes). */
const STARTED = "Fri 2026-12-04 22:00:00 UTC";
const at = (minutes: number) => Date.UTC(2026, 11, 4, 22, minutes, 0) / 1000;

const OWNERS: Rule = [/^chown etcd:etcd \/opt\/etcd\/ssl\/server-key\.pem \/opt\/etcd\/ssl\/peer-key\.pem && chown -R etcd:etcd \/var\/lib\/etcd && chmod 0700 \/var\/lib\/etcd$/, {}];
const ACTIVE_UNIT: Rule = [/^systemctl show -p ActiveState -p NRestarts etcd$/, { stdout: "ActiveState=active\nNRestarts=0\n" }];
const UNIT_OPS: Rule = [/^systemctl daemon-reload && systemctl enable --quiet etcd && systemctl (re)?start --no-block etcd$/, {}];
const HEALTHY: Rule = [/--endpoints=https:\/\/127\.0\.0\.1:2379 --command-timeout=5s endpoint health/, { stdout: "https://127.0.0.1:2379 is healthy: successfully committed proposal" }];
const MEMBERS = "8e9e05c52164694d, started, k8s-master, https://192.168.0.4:2380, https://192.168.0.4:2379, false\n91bc3c398fb3c146, started, k8s-node, https://192.168.0.5:2380, https://192.168.0.5:2379, false\nfd422379fda50e48, started, k8s-node2, https://192.168.0.6:2380, https://192.168.0.6:2379, true\n";

describe("etcd step", () => {
  test("a running leader with a new certificate: snapshot, hand leadership to a started voter, then restart and wait healthy", async () => {
    const h = fakeHost(
      [
        probe("active"),
        [/^cat \/opt\/etcd\/cfg\/etcd\.conf/, { stdout: conf("a") }],
        [/snapshot save \/var\/lib\/etcd-snapshots\/snapshot-\d{8}T\d{6}Z\.db/, {}],
        [/endpoint status$/, { stdout: "https://127.0.0.1:2379, 8e9e05c52164694d, 3.4.23, 25 kB, true, false, 2, 10, 10, \n" }],
        [/member list$/, { stdout: MEMBERS }],
        [/move-leader 91bc3c398fb3c146$/, {}],
        OWNERS, UNIT_OPS,
        ACTIVE_UNIT,
        HEALTHY,
      ],
      { changed: ["/opt/etcd/ssl/server.pem"] },
      [{ path: CONF, mode: 0o644, content: conf("a") }],
    );
    const summary = await h.run(etcd);
    const snap = h.index(/snapshot save/);
    const move = h.index(/move-leader/);
    const restart = h.index(/systemctl restart --no-block etcd/);
    assert.ok(snap >= 0 && move > snap && restart > move, `snapshot, then hand-off, then restart:\n${h.commands.join("\n")}`);
    assert.ok(h.index(/endpoint health/) > restart, "health gate after the restart");
    assert.ok(h.index(/^chown etcd:etcd/) < restart, "keys and data belong to the etcd user before it (re)starts as that user");
    assert.equal(h.fetched.length, 1, "the snapshot is copied home");
    assert.match(summary, /etcd restarted, leadership handed to k8s-node, member healthy, snapshot \.binkube\/etcd-snapshots\/k8s-master\/snapshot-/);
    assert.equal(h.index(/move-leader fd422379fda50e48/), -1, "never to a learner");
  });

  test("a running follower: snapshot and restart, no hand-off", async () => {
    const h = fakeHost(
      [
        probe("active"),
        [/^cat \/opt\/etcd\/cfg\/etcd\.conf/, { stdout: conf("a") }],
        [/snapshot save/, {}],
        [/endpoint status$/, { stdout: "https://127.0.0.1:2379, 8e9e05c52164694d, 3.4.23, 25 kB, false, false, 2, 10, 10, \n" }],
        OWNERS, UNIT_OPS,
        ACTIVE_UNIT,
        HEALTHY,
      ],
      { changed: ["/opt/etcd/ssl/peer.pem"] },
      [{ path: CONF, mode: 0o644, content: conf("a") }],
    );
    const summary = await h.run(etcd);
    assert.equal(h.index(/member list|move-leader/), -1);
    assert.match(summary, /etcd restarted, member healthy, snapshot/);
  });

  test("a running member whose config changed only in ETCD_INITIAL_CLUSTER is not restarted (no snapshot either)", async () => {
    const h = fakeHost(
      [probe("active"), [/^cat \/opt\/etcd\/cfg\/etcd\.conf/, { stdout: conf("a") }], OWNERS, UNIT_OPS, ACTIVE_UNIT],
      { changed: [CONF] },
      [{ path: CONF, mode: 0o644, content: conf("a,b") }],
    );
    const summary = await h.run(etcd);
    assert.equal(h.index(/systemctl restart/), -1, h.commands.join("\n"));
    assert.ok(h.index(/systemctl start --no-block etcd/) >= 0);
    assert.equal(h.index(/snapshot save|move-leader/), -1);
    assert.match(summary, /only the bootstrap peer list changed/);
  });

  test("a running member older than its files (a run stopped before its restart) is restarted with snapshot and health gate, and says why", async () => {
    const h = fakeHost(
      [
        probe("active", { started: STARTED, mtimes: () => [[at(5), "/opt/etcd/ssl/server.pem"], [at(-1), CONF]] }),
        [/^cat \/opt\/etcd\/cfg\/etcd\.conf/, { stdout: conf("a") }],
        [/snapshot save/, {}],
        [/endpoint status$/, { stdout: "x, 1, 3.4, 1, false, false\n" }],
        OWNERS, UNIT_OPS, ACTIVE_UNIT, HEALTHY,
      ],
      { changed: [] },
      [{ path: CONF, mode: 0o644, content: conf("a") }, { path: "/opt/etcd/ssl/server.pem", mode: 0o644, content: "cert" }],
    );
    const summary = await h.run(etcd);
    assert.ok(h.index(/snapshot save/) >= 0 && h.index(/systemctl restart --no-block etcd/) > h.index(/snapshot save/), h.commands.join("\n"));
    assert.match(summary, /0\/2 files changed, etcd restarted \(it was older than its files: \/opt\/etcd\/ssl\/server\.pem changed at 22:05:00 UTC, after the process started at 22:00:00\), member healthy/);
  });

  test("a running member current with its files and nothing changed is left alone", async () => {
    const h = fakeHost(
      [probe("active", { started: STARTED, mtimes: () => [[at(-5), "/opt/etcd/ssl/server.pem"], [at(0), CONF]] }), [/^cat \/opt\/etcd\/cfg\/etcd\.conf/, { stdout: conf("a") }], OWNERS, UNIT_OPS, ACTIVE_UNIT],
      { changed: [] },
      [{ path: CONF, mode: 0o644, content: conf("a") }, { path: "/opt/etcd/ssl/server.pem", mode: 0o644, content: "cert" }],
    );
    const summary = await h.run(etcd);
    assert.equal(h.index(/systemctl restart|snapshot save/), -1, h.commands.join("\n"));
    assert.match(summary, /etcd running/);
  });

  test("a peer-list-only change is dated back to the member's start, so the member does not read as stale afterwards", async () => {
    const h = fakeHost(
      [
        // before the sync the member is current; after it, etcd.conf is newer than the member
        probe("active", { started: STARTED, mtimes: (n) => [[n === 1 ? at(-1) : at(7), CONF]] }),
        [/^cat \/opt\/etcd\/cfg\/etcd\.conf/, { stdout: conf("a") }],
        [/^touch -m -d @\d+ -- \/opt\/etcd\/cfg\/etcd\.conf$/, {}],
        OWNERS, UNIT_OPS, ACTIVE_UNIT,
      ],
      { changed: [CONF] },
      [{ path: CONF, mode: 0o644, content: conf("a,b") }],
    );
    await h.run(etcd);
    assert.equal(h.index(/systemctl restart/), -1, h.commands.join("\n"));
    assert.ok(h.commands.includes(`touch -m -d @${at(0)} -- /opt/etcd/cfg/etcd.conf`), h.commands.join("\n"));
  });

  test("a peer-list-only change over a member that was already stale restarts it (the older change must not be hidden)", async () => {
    const h = fakeHost(
      [
        probe("active", { started: STARTED, mtimes: (n) => [[n === 1 ? at(3) : at(7), CONF]] }),
        [/^cat \/opt\/etcd\/cfg\/etcd\.conf/, { stdout: conf("a") }],
        [/snapshot save/, {}],
        [/endpoint status$/, { stdout: "x, 1, 3.4, 1, false, false\n" }],
        OWNERS, UNIT_OPS, ACTIVE_UNIT, HEALTHY,
      ],
      { changed: [CONF] },
      [{ path: CONF, mode: 0o644, content: conf("a,b") }],
    );
    await h.run(etcd);
    assert.ok(h.index(/systemctl restart --no-block etcd/) >= 0, h.commands.join("\n"));
    assert.equal(h.index(/^touch /), -1);
  });

  test("the same member with another setting changed is restarted", async () => {
    const h = fakeHost(
      [probe("active"), [/^cat \/opt\/etcd\/cfg\/etcd\.conf/, { stdout: conf("a") }], [/snapshot save/, {}], [/endpoint status$/, { stdout: "x, 1, 3.4, 1, false, false\n" }], OWNERS, UNIT_OPS, ACTIVE_UNIT, HEALTHY],
      { changed: [CONF] },
      [{ path: CONF, mode: 0o644, content: conf("a", 'ETCD_LOGGER="zap"\n') }],
    );
    await h.run(etcd);
    assert.ok(h.index(/systemctl restart --no-block etcd/) >= 0, h.commands.join("\n"));
  });

  test("a new member beside a running cluster: drop-in first, then member add (retried on 'unhealthy cluster'), then start", async () => {
    const h = fakeHost(
      [
        probe("inactive"),
        [/^test -d \/var\/lib\/etcd\/default\.etcd\/member/, { stdout: "" }],
        [/--dial-timeout=3s --command-timeout=5s endpoint health/, { stdout: "https://192.168.0.5:2379 is healthy\nhttps://192.168.0.6:2379 is healthy\n" }],
        [/--endpoints=https:\/\/192\.168\.0\.5:2379,https:\/\/192\.168\.0\.6:2379 --command-timeout=5s member list$/, { stdout: MEMBERS.split("\n").slice(1).join("\n") }],
        [/^mkdir -p \/etc\/systemd\/system\/etcd\.service\.d && .*ETCD_INITIAL_CLUSTER_STATE="existing"/, {}],
        [/member add k8s-master --peer-urls=https:\/\/192\.168\.0\.4:2380/, (_c, n) => (n === 1 ? { code: 1, stdout: "Error: etcdserver: unhealthy cluster" } : { stdout: "Member added" })],
        OWNERS, UNIT_OPS,
        ACTIVE_UNIT,
      ],
      { changed: [CONF, "/opt/etcd/bin/etcd"] },
      [{ path: CONF, mode: 0o644, content: conf("a") }],
    );
    const summary = await h.run(etcd);
    const dropin = h.index(/etcd-join\.conf/);
    const adds = h.commands.filter((c) => /member add/.test(c)).length;
    assert.ok(dropin >= 0 && dropin < h.index(/member add/), "the drop-in is written before member add (a re-run after a failure still joins)");
    assert.equal(adds, 2, "retried once after 'unhealthy cluster'");
    assert.ok(h.index(/systemctl (re)?start --no-block etcd/) > h.index(/member add/));
    assert.match(summary, /joined the existing cluster as member 3/);
    assert.equal(h.index(/snapshot save|move-leader/), -1, "nothing to snapshot on a new member");
  });

  test("a host that comes back with the data of a member the cluster removed: data moved aside (kept), then it joins", async () => {
    const rules = (listed: boolean): Rule[] => [
      probe("failed"),
      [/^test -d \/var\/lib\/etcd\/default\.etcd\/member/, { stdout: "data\n" }],
      [/--dial-timeout=3s --command-timeout=5s endpoint health/, { stdout: "https://192.168.0.5:2379 is healthy\nhttps://192.168.0.6:2379 is healthy\n" }],
      [/member list$/, { stdout: MEMBERS.split("\n").slice(listed ? 0 : 1).join("\n") }],
      [/^systemctl stop etcd; d=\/var\/lib\/etcd\/removed-\$\(date -u \+%Y%m%dT%H%M%SZ\); mv \/var\/lib\/etcd\/default\.etcd "\$d" && rm -f /, { stdout: "/var/lib/etcd/removed-20261204T220000Z\n" }],
      [/^mkdir -p \/etc\/systemd\/system\/etcd\.service\.d && /, {}],
      [/member add k8s-master --peer-urls=https:\/\/192\.168\.0\.4:2380/, { stdout: "Member added" }],
      OWNERS, UNIT_OPS, ACTIVE_UNIT,
    ];
    const h = fakeHost(rules(false), { changed: [] }, [{ path: CONF, mode: 0o644, content: conf("a") }]);
    const summary = await h.run(etcd);
    assert.ok(h.index(/mv \/var\/lib\/etcd\/default\.etcd/) < h.index(/member add/), h.commands.join("\n"));
    assert.match(summary, /joined the existing cluster as member 3, old data of a removed member kept in \/var\/lib\/etcd\/removed-20261204T220000Z/);
    // a member the cluster still lists keeps its data (a member restarting on its own data)
    const listed = fakeHost(rules(true), { changed: [] }, [{ path: CONF, mode: 0o644, content: conf("a") }]);
    await listed.run(etcd);
    assert.equal(listed.index(/mv \/var\/lib\/etcd|member add/), -1, listed.commands.join("\n"));
  });

  test("a member add that fails for another reason stops at once with that reason", async () => {
    const h = fakeHost(
      [
        probe("inactive"),
        OWNERS,
        [/^test -d /, { stdout: "" }],
        [/endpoint health/, { stdout: "https://192.168.0.5:2379 is healthy\n" }],
        [/member list$/, { stdout: "" }],
        [/^mkdir -p \/etc\/systemd/, {}],
        [/member add/, { code: 1, stdout: "Error: etcdserver: Peer URLs already exists" }],
      ],
      { changed: [CONF] },
      [{ path: CONF, mode: 0o644, content: conf("a") }],
    );
    await assert.rejects(h.run(etcd), /etcd member add k8s-master failed: Error: etcdserver: Peer URLs already exists/);
    assert.equal(h.commands.filter((c) => /member add/.test(c)).length, 1);
  });

  test("a first bring-up (no cluster answers yet) starts without member add or snapshot", async () => {
    const h = fakeHost(
      [probe("inactive"), [/^test -d /, { stdout: "" }], [/endpoint health/, { code: 1, stdout: "context deadline exceeded" }], OWNERS, UNIT_OPS, ACTIVE_UNIT],
      { changed: [CONF, "/opt/etcd/bin/etcd"] },
      [{ path: CONF, mode: 0o644, content: conf("a") }],
    );
    await h.run(etcd);
    assert.equal(h.index(/member add|snapshot save|move-leader|member list/), -1, h.commands.join("\n"));
  });

  test("a first start ends at the member's READY (active); a member still waiting for peers is watched 3 s, restarts counted", async () => {
    const first = fakeHost(
      [probe("inactive"), [/^test -d /, { stdout: "" }], [/endpoint health/, { code: 1, stdout: "context deadline exceeded" }], OWNERS, UNIT_OPS, ACTIVE_UNIT],
      { changed: [CONF, "/opt/etcd/bin/etcd"] },
      [{ path: CONF, mode: 0o644, content: conf("a") }],
    );
    let t0 = first.clock.now();
    await first.run(etcd);
    assert.ok(first.clock.now() - t0 < 2000, `READY ends the wait (took ${first.clock.now() - t0} ms of clock time)`);
    assert.equal(first.commands.filter((c) => /^systemctl show -p ActiveState/.test(c)).length, 1);

    // activating (waiting for peers), then systemd restarts it once: the 3 s watch starts over
    const waiting = fakeHost(
      [
        probe("inactive"), [/^test -d /, { stdout: "" }], [/endpoint health/, { code: 1, stdout: "context deadline exceeded" }], OWNERS, UNIT_OPS,
        [/^systemctl show -p ActiveState -p NRestarts etcd$/, (_c, n) => ({ stdout: `ActiveState=activating\nNRestarts=${n < 3 ? 0 : 1}\n` })],
      ],
      { changed: [CONF, "/opt/etcd/bin/etcd"] },
      [{ path: CONF, mode: 0o644, content: conf("a") }],
    );
    t0 = waiting.clock.now();
    await waiting.run(etcd);
    const took = waiting.clock.now() - t0;
    const polls = waiting.commands.filter((c) => /^systemctl show -p ActiveState/.test(c)).length;
    assert.ok(took >= 3000, `an activating member is watched 3 s (took ${took} ms)`);
    // the restart at poll 3 resets the window: 3 s more after it, at 250 ms a poll
    assert.ok(polls >= 3 + 12, `${polls} polls`);
  });

  test("a first bring-up of etcd (synth found no member applied) asks no peer: the members bootstrap together", async () => {
    const h = fakeHost([probe("inactive"), OWNERS, UNIT_OPS, ACTIVE_UNIT], { changed: [CONF, "/opt/etcd/bin/etcd"] }, [{ path: CONF, mode: 0o644, content: conf("a") }], true);
    await h.run(etcd);
    assert.equal(h.index(/etcdctl|^test -d /), -1, h.commands.join("\n"));
  });
});

test("etcdctl endpoint health (v3.4, 2>&1) is read in one place: healthy endpoints, and why the others are not", () => {
  const out = [
    "https://10.0.0.1:2379 is healthy: successfully committed proposal: took = 2.046ms",
    '{"level":"warn","ts":"2026-12-05T22:41:43.454Z","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed","target":"endpoint://client-1/10.0.0.3:2379","attempt":0,"error":"rpc error: code = DeadlineExceeded desc = context deadline exceeded"}',
    "https://10.0.0.3:2379 is unhealthy: failed to commit proposal: context deadline exceeded",
    "https://10.0.0.2:2379 is healthy: successfully committed proposal: took = 3.1ms",
    "Error: unhealthy cluster",
  ].join("\n");
  const h = parseEndpointHealth(out);
  assert.deepEqual(h.healthy, ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]);
  assert.equal(h.problems[0], out.split("\n")[1]);
  assert.ok(h.problems.includes("https://10.0.0.3:2379 is unhealthy: failed to commit proposal: context deadline exceeded"));
  assert.deepEqual(parseEndpointHealth("Error: context deadline exceeded\n"), { healthy: [], problems: ["Error: context deadline exceeded"] });
});
