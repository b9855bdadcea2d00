// IPv4 address and CIDR arithmetic for inventory validation and SAN computation.

export interface Cidr {
  text: string;
  base: number; // network address as an unsigned 32-bit integer
  prefix: number;
  size: number; // number of addresses in the block
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(text: string): boolean {
  return IPV4.test(text);
}

export function ipToInt(text: string): number {
  if (!isIPv4(text)) throw new Error(`not an IPv4 address: ${text}`);
  return text.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function intToIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/** Parses "a.b.c.d/n"; returns undefined when malformed or when host bits are set. */
export function parseCidr(text: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
  if (!m || !isIPv4(m[1]!)) return undefined;
  const prefix = Number(m[2]);
  if (prefix < 0 || prefix > 32) return undefined;
  const size = 2 ** (32 - prefix);
  const base = ipToInt(m[1]!);
  if (base % size !== 0) return undefined;
  return { text, base, prefix, size };
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const v = ipToInt(ip);
  return v >= cidr.base && v < cidr.base + cidr.size;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

/** The n-th address of a block (n = 1 is the first usable one). */
export function nthAddress(cidr: Cidr, n: number): string {
  return intToIp(cidr.base + n);
}
