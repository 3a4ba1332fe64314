/** IPv4 subnets: parsing "10.88.0.0/16", addresses as numbers, the gateway (.1). */
import { fail } from "../errors.ts";

export interface Subnet {
  cidr: string;
  /** network address as a 32-bit number */
  base: number;
  prefix: number;
  gateway: string;
  broadcast: string;
}

export const ipToNum = (ip: string) => ip.split(".").reduce((n, p) => n * 256 + Number(p), 0);
export const numToIp = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");

export function parseSubnet(text: string): Subnet {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text.trim());
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255)) fail(`invalid subnet "${text}": use an IPv4 CIDR such as 10.88.0.0/16`);
  const prefix = Number(m[5]);
  if (prefix < 8 || prefix > 30) fail(`invalid subnet "${text}": the prefix must be from /8 to /30 (room for a gateway and containers)`);
  const ip = ipToNum(m.slice(1, 5).join("."));
  const size = 2 ** (32 - prefix);
  const base = ip - (ip % size);
  if (base !== ip) fail(`invalid subnet "${text}": the address has host bits set; did you mean ${numToIp(base)}/${prefix}?`);
  const first = Number(m[1]);
  if (first === 0 || first === 127 || first >= 224) fail(`invalid subnet "${text}": ${first}.x addresses are reserved (use a private range like 10.88.0.0/16)`);
  return { cidr: `${numToIp(base)}/${prefix}`, base, prefix, gateway: numToIp(base + 1), broadcast: numToIp(base + size - 1) };
}

export const DEFAULT_SUBNET = "10.88.0.0/16";
export const BRIDGE = "nsbox0";
