// Download credentials come from the environment, per host, and never show in a URL binkube prints.
import assert from "node:assert/strict";
import { test } from "node:test";
import { downloadAuth } from "../../src/binaries/fetch";
import { safeUrl, shown, urlCredential } from "../../src/inventory/grammar";

test("BINKUBE_DOWNLOAD_AUTH_<HOST>: USER:PASSWORD is basic, anything else a bearer token, only for that host, only over https", () => {
  const env = { BINKUBE_DOWNLOAD_AUTH_DL_EXAMPLE_COM: "ci:tok3n", BINKUBE_DOWNLOAD_AUTH_MIRROR_LOCAL: "abc123" };
  assert.equal(downloadAuth(new URL("https://dl.example.com/etcd"), env), `Basic ${Buffer.from("ci:tok3n").toString("base64")}`);
  assert.equal(downloadAuth(new URL("https://mirror.local/x"), env), "Bearer abc123");
  assert.equal(downloadAuth(new URL("https://other.example.com/etcd"), env), undefined);
  assert.throws(() => downloadAuth(new URL("http://mirror.local/x"), env), /BINKUBE_DOWNLOAD_AUTH_MIRROR_LOCAL is set, but http:\/\/mirror\.local\/x is plain http/);
});

test("credentials in URLs are found and masked wherever a URL is shown", () => {
  assert.equal(urlCredential("https://ci:t@dl.example.com/etcd"), "user:password@");
  assert.equal(urlCredential("https://dl.example.com/etcd?sig=abc&v=1"), "the query parameter sig");
  assert.equal(urlCredential("https://dl.example.com/v1.17.17/etcd?arch=amd64"), undefined);
  assert.equal(safeUrl("https://ci:t0k@dl.example.com/a?token=x&arch=amd64"), "https://***@dl.example.com/a?token=***&arch=amd64");
  assert.equal(shown(`https://u:p@h/${"x".repeat(200)}`).includes("u:p"), false);
  assert.ok(shown("y".repeat(1_000_000)).length < 100, "a 1 MB value is shortened");
});
