import assert from "node:assert/strict";
import { test } from "node:test";
import { BOOTSTRAP_TOKEN_TTL_MINUTES, bootstrapTokenSecret, newBootstrapToken } from "../../src/steps/bootstrap-token";

test("bootstrap tokens: the format the apiserver's bootstrap authenticator accepts, fresh each time, expiring", () => {
  const now = new Date("2026-12-01T10:00:00.123Z");
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const t = newBootstrapToken(now);
    // k8s.io/cluster-bootstrap: token-id [a-z0-9]{6}, token-secret [a-z0-9]{16}
    assert.match(t.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    assert.equal(t.secretName, `bootstrap-token-${t.id}`);
    assert.ok(!seen.has(t.token));
    seen.add(t.token);
  }
  const t = newBootstrapToken(now);
  const s = JSON.parse(bootstrapTokenSecret(t, "lab4")) as { type: string; metadata: { name: string; namespace: string }; stringData: Record<string, string> };
  assert.equal(s.type, "bootstrap.kubernetes.io/token");
  assert.deepEqual([s.metadata.namespace, s.metadata.name], ["kube-system", t.secretName]);
  assert.equal(s.stringData["token-id"], t.id);
  assert.equal(s.stringData["token-secret"], t.secret);
  assert.equal(s.stringData["usage-bootstrap-authentication"], "true");
  assert.equal(s.stringData.expiration, new Date(now.getTime() + BOOTSTRAP_TOKEN_TTL_MINUTES * 60_000).toISOString().replace(/\.\d+Z$/, "Z"));
  assert.match(s.stringData.expiration!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, "RFC 3339 as the token cleaner parses it");
});
