// `binkube lab up|down|status`: argument parsing and output; the work is in ./lab.
import { LabPreconditionError, labDown, labStatus, labUp } from "./lab";
import { preflight } from "./preflight";
import { formatTable } from "../src/util/table";

const USAGE = `usage: binkube lab <command> [options]

  up [--hosts N] [--dir DIR] [--operator root|sudo]
                               start N local test hosts (default 3; systemd-nspawn; needs root)
                               and write DIR/cluster.yaml, DIR/known_hosts, DIR/lab.json;
                               --operator sudo: binkube deploys as ubuntu with passwordless sudo,
                               whose key root does not accept (as on cloud images)
  down [--dir DIR]             stop the hosts and remove their files (and the network when no
                               lab is left)
  status [--dir DIR]           one line per host: name, address, running?, ssh ok?
  check                        print what this machine is missing to run the lab

DIR defaults to $BINKUBE_LAB_DIR or ./.lab. Environment: BINKUBE_LAB_CACHE (base rootfs cache,
default /var/cache/binkube/lab), BINKUBE_LAB_BOOT_TIMEOUT (seconds, default 90).`;

interface Parsed {
  cmd: string;
  dir?: string;
  hosts?: number;
  operator?: "root" | "sudo";
}

function parse(argv: string[]): Parsed | string {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "-h" || cmd === "--help" || cmd === "help") return "help";
  if (!["up", "down", "status", "check"].includes(cmd)) return `unknown lab command '${cmd}'`;
  const out: Parsed = { cmd };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    const eq = a.indexOf("=");
    const flag = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith("--") && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = (): string | undefined => (inline !== undefined ? inline : rest[++i]);
    if (flag === "-h" || flag === "--help") return "help";
    if (flag === "--dir") {
      const v = value();
      if (!v) return "--dir needs a value";
      out.dir = v;
    } else if (flag === "--hosts" && cmd === "up") {
      const v = value();
      if (!v || !/^\d+$/.test(v)) return `--hosts needs a whole number (got '${v ?? ""}')`;
      out.hosts = Number(v);
    } else if (flag === "--operator" && cmd === "up") {
      const v = value();
      if (v !== "root" && v !== "sudo") return `--operator is root or sudo (got '${v ?? ""}')`;
      out.operator = v;
    } else {
      return `unknown option '${a}' for 'lab ${cmd}'`;
    }
  }
  return out;
}

/** Runs `binkube lab ARGV…`; returns the process exit code (0 ok, 1 failure, 2 usage). */
export async function labCommand(argv: string[]): Promise<number> {
  const p = parse(argv);
  if (p === "help") {
    process.stdout.write(USAGE + "\n");
    return argv.length === 0 ? 2 : 0;
  }
  if (typeof p === "string") {
    process.stderr.write(`binkube lab: ${p}\n\n${USAGE}\n`);
    return 2;
  }
  try {
    switch (p.cmd) {
      case "check": {
        const r = preflight();
        if (r.ok) process.stdout.write("lab: this machine has everything the lab needs\n");
        else process.stderr.write(r.message + "\n");
        return r.ok ? 0 : 1;
      }
      case "up": {
        const st = await labUp({ dir: p.dir, hosts: p.hosts, operator: p.operator });
        for (const h of st.hosts) process.stdout.write(`${h.name}\t${h.address}\t[${h.roles.join(", ")}]\n`);
        process.stdout.write(`inventory: ${st.inventory}\n`);
        return 0;
      }
      case "down": {
        await labDown({ dir: p.dir });
        return 0;
      }
      case "status": {
        const s = await labStatus({ dir: p.dir });
        if (!s.exists) {
          process.stdout.write(`no lab in ${s.dir}\n`);
          return 1;
        }
        const rows = s.hosts.map((h) => [h.name, h.address, h.running ? "yes" : "no", h.sshOk ? "ok" : `no${h.running ? ` (${h.sshError.split("\n")[0]})` : ""}`]);
        process.stdout.write(`${formatTable(["NAME", "ADDRESS", "RUNNING", "SSH"], rows)}\n`);
        return s.hosts.length > 0 && s.hosts.every((h) => h.running && h.sshOk) ? 0 : 1;
      }
    }
  } catch (e) {
    if (e instanceof LabPreconditionError) {
      process.stderr.write(e.message + "\n");
      return 1;
    }
    process.stderr.write(`binkube lab ${p.cmd}: ${(e as Error).message}\n`);
    return 1;
  }
  return 2;
}

if (require.main === module) {
  labCommand(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${String(e)}\n`);
      process.exit(1);
    },
  );
}
