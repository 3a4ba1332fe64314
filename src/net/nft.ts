/**
 * NAT for the bridge through nftables, by driving the `nft` command: outbound
 * masquerade for the subnet, DNAT for published ports (from outside, and from
 * the host itself to 127.0.0.1), all in one table of nsbox's own, "ip nsbox".
 * Each container's rules carry a comment "nsbox:<id>" and go with it.
 */

import { NsboxError } from "../errors.ts";
import { existsSync } from "../native/fs.ts";
import type { PortBinding } from "./state.ts";

let nftPath: string | undefined;

/** The nft command, if this host has one. */
export function findNft(): string | undefined {
  if (nftPath) return nftPath;
  for (const p of ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"]) if (existsSync(p)) return (nftPath = p);
  return undefined;
}

function nftBinary(): string {
  const p = findNft();
  if (p) return p;
  throw new NsboxError(
    "bridge networking needs the nft command from nftables (Debian/Ubuntu: apt-get install nftables; Fedora: dnf install nftables), or run with --net none or --net host",
  );
}

export function nft(script: string): string {
  const r = Bun.spawnSync([nftBinary(), "-f", "-"], { stdin: new TextEncoder().encode(script), stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new NsboxError(`nft refused nsbox's rules: ${r.stderr.toString().trim().split("\n")[0]}`);
  return r.stdout.toString();
}

/** nft -j ARGS, parsed; undefined when it fails, or with no nft (then there is no table to read: prune and inspect work) */
function nftJson(args: string[]): unknown {
  const bin = findNft();
  if (!bin) return undefined;
  const r = Bun.spawnSync([bin, "-j", ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) return undefined;
  try {
    return JSON.parse(r.stdout.toString());
  } catch {
    return undefined;
  }
}

export const TABLE = "nsbox";

/** The table, its chains and the subnet-wide rules (idempotent: rebuilt whole). */
export function ensureNat(subnet: string, bridge: string): void {
  const exists = nftJson(["list", "table", "ip", TABLE]) !== undefined;
  if (exists) return;
  nft(`
table ip ${TABLE} {
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; }
  chain output { type nat hook output priority -100; policy accept; }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${subnet} oifname != "${bridge}" masquerade comment "nsbox: containers to the outside"
    ip saddr 127.0.0.0/8 oifname "${bridge}" masquerade comment "nsbox: host loopback to published ports"
    ip saddr ${subnet} ip daddr ${subnet} ct status dnat masquerade comment "nsbox: a container to its own published port"
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "${bridge}" accept
    oifname "${bridge}" accept
  }
}
`);
}

const comment = (id: string) => `nsbox:${id}`;

export function addPortRules(id: string, ip: string, ports: PortBinding[]): void {
  if (!ports.length) return;
  const rules = ports.map((p) => {
    const match = p.hostIp && p.hostIp !== "0.0.0.0" ? `ip daddr ${p.hostIp}` : "fib daddr type local";
    return `${match} ${p.protocol} dport ${p.hostPort} dnat to ${ip}:${p.containerPort} comment "${comment(id)}"`;
  });
  nft(rules.map((r) => `add rule ip ${TABLE} prerouting ${r}\nadd rule ip ${TABLE} output ${r}\n`).join(""));
}

interface NftRule {
  rule?: { chain: string; handle: number; comment?: string };
}

/** Deletes every rule of container id (by handle, found through its comment). */
export function deletePortRules(id: string): void {
  const j = nftJson(["list", "table", "ip", TABLE]) as { nftables?: NftRule[] } | undefined;
  if (!j?.nftables) return;
  const mine = j.nftables.filter((x) => x.rule?.comment === comment(id)).map((x) => x.rule as { chain: string; handle: number });
  if (mine.length) nft(mine.map((r) => `delete rule ip ${TABLE} ${r.chain} handle ${r.handle}\n`).join(""));
}

/** Rules nsbox has for containers, by id (for network inspect / prune). */
export function portRuleOwners(): string[] {
  const j = nftJson(["list", "table", "ip", TABLE]) as { nftables?: NftRule[] } | undefined;
  return [
    ...new Set(
      (j?.nftables ?? [])
        .map((x) => x.rule?.comment)
        .filter((c): c is string => !!c && /^nsbox:[0-9a-f]{64}$/.test(c))
        .map((c) => c.slice(6)),
    ),
  ];
}

export function deleteTable(): void {
  if (nftJson(["list", "table", "ip", TABLE]) !== undefined) nft(`delete table ip ${TABLE}\n`);
}

export function natTable(): unknown {
  return nftJson(["list", "table", "ip", TABLE]);
}
