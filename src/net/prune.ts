/**
 * `nsbox network prune`: gives back what belongs to containers that no longer
 * exist and, when nothing uses the bridge any more, removes it with nsbox's
 * nftables table and puts back the sysctls nsbox changed.
 *
 * "Nothing uses it" is judged for the whole host, from two sources:
 *   - the network state's records: an address held by a container of any state
 *     root that shares this network state (each one's root is recorded, see
 *     ownerGone), and
 *   - the kernel: no interface plugged into nsbox0. The bridge is the host's
 *     (one name in a network namespace), while a network state is a file: a
 *     container recorded in another one (NSBOX_NET_STATE), in a state file that
 *     was lost or rewritten, or an interface a person plugged in, is seen only
 *     here. Deleting a bridge that still has ports cuts those containers off
 *     (their veth loses its bridge, their NAT goes with the nft table).
 * What is kept, and why, is said in one line.
 */

import { log } from "../log.ts";
import { writeFileSync } from "../native/fs.ts";
import { bridgePorts, delLink, linkByName, NetlinkError, talk } from "./netlink.ts";
import { deletePortRules, deleteTable, natTable, portRuleOwners } from "./nft.ts";
import { hostVethName } from "./request.ts";
import { type NetState, ownerGone, withNetState } from "./state.ts";
import { BRIDGE } from "./subnet.ts";

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
const short = (ids: string[], names: Map<string, string>) => ids.map((id) => names.get(id) ?? id.slice(0, 12)).join(", ");

/**
 * Releases the network of containers that no longer exist (their address, ports,
 * rules and a veth that outlived them). The nft rules are the host's: a rule of
 * a container this network state has no record of is another state's, and goes
 * only once that container's veth is gone too (it has one while it lives).
 */
function releaseGone(s: NetState): void {
  const recorded = (id: string) => id in s.owners || Object.values(s.addresses).includes(id) || Object.values(s.ports).includes(id);
  const unplugged = (id: string) => recorded(id) || !linkByName(-1, hostVethName(id));
  const gone = new Set([...Object.values(s.addresses), ...Object.values(s.ports), ...portRuleOwners()].filter((id) => ownerGone(s, id) && unplugged(id)));
  for (const id of gone) {
    deletePortRules(id);
    const veth = linkByName(-1, hostVethName(id));
    try {
      if (veth) talk(-1, [delLink(veth.index)], [`delete the veth of ${id.slice(0, 12)}`]);
    } catch (e) {
      if (!(e instanceof NetlinkError && e.errno === 19)) throw e; // ENODEV: its namespace was just torn down, and it with it
    }
    log.info(`released the network of removed container ${id.slice(0, 12)}`);
  }
  for (const [ip, id] of Object.entries(s.addresses)) if (gone.has(id)) delete s.addresses[ip];
  for (const [k, id] of Object.entries(s.ports)) if (gone.has(id)) delete s.ports[k];
  for (const id of gone) delete s.owners[id];
}

/** Why the bridge must stay, in words (undefined: nothing uses it). */
function usersOf(s: NetState, names: Map<string, string>): string | undefined {
  const holders = [...new Set(Object.values(s.addresses))];
  const br = linkByName(-1, BRIDGE);
  const known = new Set(holders.map(hostVethName));
  const strangers = br ? bridgePorts(-1, br.index).filter((p) => !known.has(p)) : [];
  const why: string[] = [];
  if (holders.length) why.push(`${plural(holders.length, "container holds an address", "containers hold addresses")} on it (${short(holders, names)})`);
  if (strangers.length)
    why.push(
      `${plural(strangers.length, "interface is", "interfaces are")} plugged into it that this network state does not know (${strangers.join(", ")}: containers recorded in another NSBOX_NET_STATE, or added by hand)`,
    );
  return why.length ? `${why.join("; ")}; prune removes it once they are gone` : undefined;
}

/** Removes the bridge, the nft table and the sysctls nsbox set; says what it removed. */
function removeAll(s: NetState): void {
  const removed: string[] = [];
  const br = linkByName(-1, BRIDGE);
  if (br) {
    try {
      talk(-1, [delLink(br.index)], [`delete the bridge ${BRIDGE}`]);
      removed.push(`the bridge ${BRIDGE}`);
    } catch (e) {
      if (!(e instanceof NetlinkError && e.errno === 19)) throw e; // ENODEV: deleted meanwhile (by hand)
    }
  }
  if (natTable() !== undefined) {
    deleteTable();
    removed.push("nsbox's nftables table");
  }
  for (const [k, old] of Object.entries(s.sysctls ?? {})) {
    try {
      writeFileSync(`/proc/sys/${k.replace(/\./g, "/")}`, old);
      log.info(`restored ${k}=${old}`);
    } catch {
      // a per-interface sysctl went with the bridge
    }
  }
  s.sysctls = undefined;
  s.subnet = undefined;
  s.nat = undefined;
  if (removed.length) log.info(`removed ${removed.join(" and ")} (no container uses them)`);
}

/** names: container id -> name, for the containers this command can see (others are shown by short id). */
export async function pruneNetwork(names: Map<string, string>): Promise<void> {
  await withNetState((s) => {
    releaseGone(s);
    const users = usersOf(s, names);
    // Kept: the bridge, and with it the nft table (their NAT and ports) and the
    // sysctls they need, whose old values stay recorded for a later prune.
    if (users) log.info(`kept ${BRIDGE}: ${users}`);
    else removeAll(s);
  });
}
