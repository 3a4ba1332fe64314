/**
 * `nsbox network ls|inspect|prune`: the nsbox0 bridge, its address allocations,
 * published ports and NAT rules. prune (src/net/prune.ts) gives back what
 * belongs to containers that no longer exist and, when nothing on the host uses
 * the bridge, removes it with nsbox's nftables table and restores the sysctls
 * nsbox changed.
 */
import { allViews, reconcile } from "../container/lifecycle.ts";
import { fail } from "../errors.ts";
import { bridgePorts, linkByName } from "../net/netlink.ts";
import { natTable } from "../net/nft.ts";
import { pruneNetwork } from "../net/prune.ts";
import { readNetState } from "../net/state.ts";
import { BRIDGE, parseSubnet } from "../net/subnet.ts";
import { readSysctl } from "../net/sysctl.ts";
import { defineCommand, type FlagsDef, parseFlags, toCitty } from "./args.ts";
import { checkFormat } from "./common.ts";
import { table } from "./format.ts";

export const networkFlags = {
  action: { type: "positional", description: "ls, inspect or prune", required: true },
  format: { type: "string", description: "ls: table (default) or json (one object per line)", valueHint: "FORMAT" },
} satisfies FlagsDef;

export const networkCommand = defineCommand({
  meta: { name: "network", description: "Show and clean nsbox's bridge network (nsbox0)" },
  args: () => toCitty(networkFlags),
});

function names(): Map<string, string> {
  return new Map(allViews().map((v) => [v.id, v.config.name ?? v.id.slice(0, 12)]));
}

export async function network(argv: string[]): Promise<number> {
  const p = parseFlags("network", argv, networkFlags);
  const action = p.positionals[0];
  await reconcile();
  if (action === "ls") {
    const format = checkFormat(p.flags.format);
    const s = readNetState();
    const link = linkByName(-1, BRIDGE);
    const subnet = s.subnet ? parseSubnet(s.subnet) : undefined;
    const row = {
      Name: BRIDGE,
      Driver: "bridge",
      Subnet: s.subnet ?? null,
      Gateway: subnet?.gateway ?? null,
      Containers: Object.keys(s.addresses).length,
      State: link ? "up" : "not created",
    };
    if (format === "json") console.log(JSON.stringify(row));
    else
      console.log(
        table(
          ["NAME", "DRIVER", "SUBNET", "GATEWAY", "CONTAINERS", "STATE"],
          [[row.Name, row.Driver, row.Subnet ?? "-", row.Gateway ?? "-", String(row.Containers), row.State]],
        ),
      );
    return 0;
  }
  if (p.flags.format !== undefined) fail(`--format goes with network ls only, not with network ${action ?? ""}`);
  if (action === "inspect") {
    const s = readNetState();
    const n = names();
    const link = linkByName(-1, BRIDGE);
    console.log(
      JSON.stringify(
        {
          Name: BRIDGE,
          Driver: "bridge",
          Exists: !!link,
          // what the kernel has plugged into it, whatever state recorded it (see src/net/prune.ts)
          Interfaces: link ? bridgePorts(-1, link.index) : [],
          Subnet: s.subnet ?? null,
          Gateway: s.subnet ? parseSubnet(s.subnet).gateway : null,
          Addresses: Object.entries(s.addresses).map(([ip, id]) => ({ Ip: ip, Container: id, Name: n.get(id) ?? null })),
          Ports: Object.entries(s.ports).map(([k, id]) => ({ Binding: k, Container: id, Name: n.get(id) ?? null })),
          Sysctls: Object.entries(s.sysctls ?? {}).map(([k, old]) => ({ Name: k, Before: old, Now: readSysctl(k) ?? null })),
          Nftables: natTable() ?? null,
        },
        null,
        2,
      ),
    );
    return 0;
  }
  if (action === "prune") {
    await pruneNetwork(names());
    return 0;
  }
  fail(`unknown network action "${action ?? ""}": use ls, inspect or prune`);
}
