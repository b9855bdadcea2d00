// A throwaway PostgreSQL server for the shared-state e2e: Debian's server binaries, a data dir
// under the test's temp dir, listening on a unix socket there only (no TCP port at all).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./proc";

export interface Postgres {
  /** libpq / lib/pq key=value connection string (psql and Terraform's pg backend both take it). */
  connStr: string;
  /** SQL through psql as the server's superuser. */
  sql(query: string): Promise<string>;
  stop(): Promise<void>;
}

function serverBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!fs.existsSync(root)) return undefined;
  const v = fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, "bin", "pg_ctl"))).sort((a, b) => Number(b) - Number(a))[0];
  return v ? path.join(root, v, "bin") : undefined;
}

export async function startPostgres(dir: string): Promise<Postgres> {
  const bin = serverBin();
  assert.ok(bin, "PostgreSQL server binaries missing (scripts/install-deps.sh installs Debian's postgresql)");
  const data = path.join(dir, "pgdata");
  const sock = path.join(dir, "pgsock");
  fs.mkdirSync(sock, { recursive: true });
  fs.mkdirSync(data, { recursive: true });
  // the server refuses to run as root: the postgres system user owns its files
  fs.chmodSync(dir, 0o755);
  for (const d of [data, sock]) assert.equal((await run("chown", ["postgres:postgres", d])).code, 0);
  const as = (cmd: string, args: string[]) => run("runuser", ["-u", "postgres", "--", path.join(bin!, cmd), ...args], { timeoutMs: 120_000 });
  const init = await as("initdb", ["-D", data, "-A", "trust", "-U", "postgres"]);
  assert.equal(init.code, 0, init.stderr);
  const start = await as("pg_ctl", ["-D", data, "-l", path.join(data, "server.log"), "-w", "-o", `-c listen_addresses='' -c unix_socket_directories=${sock} -p 5499`, "start"]);
  assert.equal(start.code, 0, start.stderr + fs.readFileSync(path.join(data, "server.log"), "utf8").slice(-2000));
  const connStr = `host=${sock} port=5499 user=postgres dbname=binkube sslmode=disable`;
  const psql = (db: string, query: string) => run("psql", [connStr.replace("dbname=binkube", `dbname=${db}`), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query]);
  const created = await psql("postgres", "CREATE DATABASE binkube");
  assert.equal(created.code, 0, created.stderr);
  return {
    connStr,
    sql: async (q) => {
      const r = await psql("binkube", q);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    },
    stop: async () => void (await as("pg_ctl", ["-D", data, "-m", "fast", "stop"])),
  };
}
