// Kubelet TLS bootstrap with bootstrap tokens (kube-apiserver --enable-bootstrap-token-auth): one
// token per joining host, made when that host joins, stored only as a Secret in kube-system and in
// the host's bootstrap.kubeconfig (0600), expiring after BOOTSTRAP_TOKEN_TTL_MINUTES and deleted
// once the node is Ready. Never in pki/, Terraform state, cdktf.out or logs (sent over stdin).
import * as crypto from "node:crypto";

export const BOOTSTRAP_TOKEN_TTL_MINUTES = 30;

export interface BootstrapToken {
  id: string;
  secret: string;
  /** "<id>.<secret>", what the kubelet presents. */
  token: string;
  secretName: string;
  expires: Date;
}

/** [a-z0-9]{n} from the CSPRNG, the bootstrap token alphabet (no modulo bias: 256 - 256 % 36 cut-off). */
function randomToken(n: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let out = "";
  while (out.length < n) for (const b of crypto.randomBytes(n)) if (b < 252 && out.length < n) out += alphabet[b % 36];
  return out;
}

export function newBootstrapToken(now = new Date()): BootstrapToken {
  const id = randomToken(6);
  const secret = randomToken(16);
  return { id, secret, token: `${id}.${secret}`, secretName: `bootstrap-token-${id}`, expires: new Date(now.getTime() + BOOTSTRAP_TOKEN_TTL_MINUTES * 60_000) };
}

/** The Secret the apiserver's bootstrap authenticator looks up (type bootstrap.kubernetes.io/token). */
export function bootstrapTokenSecret(t: BootstrapToken, host: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: t.secretName, namespace: "kube-system", labels: { "binkube.io/bootstrap-for": host } },
    type: "bootstrap.kubernetes.io/token",
    stringData: {
      description: `binkube: TLS bootstrap of ${host}`,
      "token-id": t.id,
      "token-secret": t.secret,
      expiration: t.expires.toISOString().replace(/\.\d+Z$/, "Z"),
      "usage-bootstrap-authentication": "true",
    },
  });
}
