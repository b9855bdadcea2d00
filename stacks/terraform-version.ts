// terraform_data needs Terraform >= 1.4. cdktf checks that by running `terraform version` once
// per resource during synth (seconds per hundred resources), so the app skips cdktf's
// validations and checks the version here, once.
import { execFileSync } from "node:child_process";

export function checkTerraformVersion(engine: string, warn: (line: string) => void): void {
  if (engine !== "terraform_data") return;
  const bin = process.env.TERRAFORM_BINARY_NAME || "terraform";
  let out: string;
  try {
    out = execFileSync(bin, ["version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 20_000 });
  } catch {
    warn(`warning: ${bin} not found: synth works, but deploy needs Terraform >= 1.4 (or OpenTofu, with TERRAFORM_BINARY_NAME=tofu)`);
    return;
  }
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(out);
  if (!m) return warn(`warning: could not read the version printed by \`${bin} version\``);
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major === 1 && minor < 4) throw new Error(`${bin} ${m[0]} is too old for terraform_data resources: install Terraform >= 1.4, or set engine: null_resource in the inventory`);
}
