/**
 * A container's network, in docker's modes:
 *   none       its own network namespace with only lo, up
 *   host       the host's network namespace
 *   container  another container's network namespace (--net container:NAME)
 *   bridge     its own namespace, plugged into the nsbox0 bridge by a veth pair
 *              (eth0 inside), an address from the subnet, a default route via
 *              the bridge, outbound NAT and published ports through nftables
 *
 * prepare() runs before the container exists (reserves an address and ports,
 * creates the bridge on first use); plumb() runs once its namespace exists
 * (veth, address, route, port rules); release() undoes both, on every path.
 */

import { fail, NsboxError } from "../errors.ts";
import { closeSync, fstatSync, openSync, readFileSync, writeFileSync } from "../native/fs.ts";
import { roots } from "../state/paths.ts";
import { defaultRoute, delLink, linkByName, NetlinkError, newAddr, newBridge, newVeth, setLink, talk } from "./netlink.ts";
import { addPortRules, deletePortRules, ensureNat } from "./nft.ts";
import { hostPortInUse } from "./ports.ts";
import { hostVethName, type NetworkRecord, type NetworkRequest, plannedNetwork } from "./request.ts";
import { type PortBinding, portKey, withNetState } from "./state.ts";
import { BRIDGE, DEFAULT_SUBNET, ipToNum, numToIp, parseSubnet } from "./subnet.ts";
import { ensureSysctl } from "./sysctl.ts";

/** Creates the bridge (with the gateway address) if it does not exist yet; true when it did. */
function ensureBridge(subnet: ReturnType<typeof parseSubnet>): boolean {
  const have = linkByName(-1, BRIDGE);
  if (have) return false;
  try {
    talk(-1, [newBridge(BRIDGE)], [`create the bridge ${BRIDGE}`]);
  } catch (e) {
    if (!(e instanceof NetlinkError && e.errno === 17)) throw e; // EEXIST: another nsbox made it
  }
  const br = linkByName(-1, BRIDGE);
  if (!br) throw new NsboxError(`the bridge ${BRIDGE} vanished while nsbox was setting it up`);
  try {
    talk(-1, [newAddr(br.index, subnet.gateway, subnet.prefix, subnet.broadcast)], [`give ${BRIDGE} the address ${subnet.gateway}/${subnet.prefix}`]);
  } catch (e) {
    if (!(e instanceof NetlinkError && e.errno === 17)) throw e;
  }
  talk(-1, [setLink(br.index, { up: true })], [`bring ${BRIDGE} up`]);
  return true;
}

export async function prepareNetwork(id: string, req: NetworkRequest): Promise<NetworkRecord> {
  const planned = plannedNetwork(req);
  if (planned) return planned;
  return withNetState((s) => {
    const subnet = parseSubnet(s.subnet ?? req.subnet ?? DEFAULT_SUBNET);
    if (req.subnet && s.subnet && parseSubnet(req.subnet).cidr !== s.subnet)
      fail(`the ${BRIDGE} bridge already uses ${s.subnet}: remove the bridge containers and run "nsbox network prune" to change it`);
    // Clashes first: a refused run changes nothing on the host.
    for (const [i, p] of req.ports.entries()) {
      // Two bindings clash on the same protocol and port when either one is on every address.
      const clash = (q: PortBinding) =>
        q.protocol === p.protocol &&
        q.hostPort === p.hostPort &&
        (!q.hostIp || !p.hostIp || q.hostIp === "0.0.0.0" || p.hostIp === "0.0.0.0" || q.hostIp === p.hostIp);
      if (req.ports.slice(0, i).some(clash)) fail(`port ${p.hostPort}/${p.protocol} is given twice with -p`);
      for (const [k, owner] of Object.entries(s.ports)) {
        const [protocol, hostIp, port] = k.split("/");
        if (owner !== id && clash({ protocol: protocol as "tcp" | "udp", hostIp: hostIp as string, hostPort: Number(port), containerPort: 0 }))
          fail(`port ${p.hostPort}/${p.protocol} is already published by container ${owner.slice(0, 12)}`);
      }
      if (hostPortInUse(p)) fail(`port ${p.hostPort}/${p.protocol} is already in use on the host: choose another host port`);
    }
    const created = ensureBridge(subnet);
    s.subnet = subnet.cidr;
    // Outbound NAT, and published ports reached from outside, need forwarding.
    ensureSysctl(s, "net.ipv4.ip_forward", "1", "containers on the bridge reach other networks through the host");
    // DNAT from 127.0.0.1 to a container is dropped as martian unless the bridge allows it.
    ensureSysctl(s, `net.ipv4.conf.${BRIDGE}.route_localnet`, "1", "published ports answer on the host's 127.0.0.1");
    // Checking the nft table costs a process per run: done when the bridge is
    // (re)made or the state says the table is not known to be there.
    if (!s.nat || created) {
      ensureNat(subnet.cidr, BRIDGE);
      s.nat = true;
    }
    // The lowest free address after the gateway.
    const size = 2 ** (32 - subnet.prefix);
    const used = new Set(Object.keys(s.addresses));
    let ip: string | undefined;
    for (let n = subnet.base + 2; n < subnet.base + size - 1; n++) {
      if (!used.has(numToIp(n))) {
        ip = numToIp(n);
        break;
      }
    }
    if (!ip) fail(`no free address left in ${subnet.cidr}`);
    s.addresses[ip] = id;
    s.owners[id] = roots().state;
    for (const p of req.ports) s.ports[portKey(p)] = id;
    return {
      mode: "bridge",
      ip,
      gateway: subnet.gateway,
      prefix: subnet.prefix,
      subnet: subnet.cidr,
      bridge: BRIDGE,
      hostVeth: hostVethName(id),
      ports: req.ports,
    };
  });
}

/** Plugs a bridge container in, once its network namespace exists (pid: its PID 1 as the host sees it). */
export function plumbNetwork(id: string, rec: NetworkRecord, pid: number): void {
  if (rec.mode !== "bridge" || !rec.ip || !rec.hostVeth) return;
  const netns = openSync(`/proc/${pid}/ns/net`, "r");
  try {
    const br = linkByName(-1, BRIDGE);
    if (!br) throw new NsboxError(`the bridge ${BRIDGE} is gone (was it deleted by hand?): run "nsbox network prune" and try again`);
    talk(-1, [newVeth(rec.hostVeth, "eth0", netns)], [`create the veth pair ${rec.hostVeth} / eth0`]);
    const host = linkByName(-1, rec.hostVeth);
    if (!host?.link) throw new NsboxError(`the veth ${rec.hostVeth} has no peer`);
    talk(-1, [setLink(host.index, { master: br.index, up: true })], [`attach ${rec.hostVeth} to ${BRIDGE}`]);
    // A container reaching its own published port comes back through the port it
    // left by (when br_netfilter sees bridged traffic): the bridge must allow that.
    try {
      writeFileSync(`/sys/class/net/${rec.hostVeth}/brport/hairpin_mode`, "1");
    } catch {
      // only this one case needs it
    }
    const eth0 = host.link;
    const bcast = numToIp(ipToNum(rec.ip) - (ipToNum(rec.ip) % 2 ** (32 - (rec.prefix as number))) + 2 ** (32 - (rec.prefix as number)) - 1);
    talk(
      netns,
      [newAddr(eth0, rec.ip, rec.prefix as number, bcast), setLink(eth0, { up: true }), defaultRoute(rec.gateway as string, eth0)],
      [`give eth0 the address ${rec.ip}/${rec.prefix}`, "bring eth0 up", `add the default route via ${rec.gateway}`],
    );
    addPortRules(id, rec.ip, rec.ports);
    rec.netnsInode = fstatSync(netns).ino;
  } finally {
    closeSync(netns);
  }
}

/** A network namespace bind-mounted somewhere (e.g. by `nsbox ns --bind`) outlives its processes. */
function netnsPinned(inode: number): boolean {
  try {
    return readFileSync("/proc/self/mountinfo", "utf8").includes(`net:[${inode}]`);
  } catch {
    return true;
  }
}

/** Gives back the address, the ports and their rules, and the veth (if it outlived the namespace). */
export async function releaseBridge(id: string, rec: NetworkRecord | undefined, quick = false): Promise<void> {
  if (rec?.mode !== "bridge") return;
  // The veth goes with the container's network namespace, which the kernel
  // tears down once its last process is gone (in batches: 5-15 ms here).
  // Deleting it ourselves waits for an RCU grace period of its own (25-40 ms),
  // so a foreground run (quick) first gives the kernel that moment; rm, the
  // monitor's cleanup, and a namespace something keeps alive (nsbox ns --bind)
  // delete it at once. Either way no veth is left when nsbox returns.
  if (rec.hostVeth) {
    const pinned = rec.netnsInode === undefined || netnsPinned(rec.netnsInode);
    for (let waited = 0; quick && !pinned && waited < 150 && linkByName(-1, rec.hostVeth); waited += 3) await Bun.sleep(3);
    const l = linkByName(-1, rec.hostVeth);
    if (l) {
      try {
        talk(-1, [delLink(l.index)], [`delete the veth ${rec.hostVeth}`]);
      } catch (e) {
        if (!(e instanceof NetlinkError && e.errno === 19)) throw e; // ENODEV: the kernel was first
      }
    }
  }
  await withNetState((s) => {
    if (rec.ports.length) deletePortRules(id);
    for (const [ip, owner] of Object.entries(s.addresses)) if (owner === id) delete s.addresses[ip];
    for (const [k, owner] of Object.entries(s.ports)) if (owner === id) delete s.ports[k];
    delete s.owners[id];
  });
}
