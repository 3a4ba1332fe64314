/**
 * One bridge, several records of it: nsbox0 is the host's (one name per network
 * namespace), while the records of who uses it are files (a state root per
 * --state, a network state per NSBOX_NET_STATE). `network prune` run with one
 * set of records must not delete the bridge, the nft table or the sysctls that
 * containers of another one still use.
 *
 * Everything runs in a network namespace of the test's own (nsenter --net), as
 * in net-sandbox.test.ts: its nsbox0, nft table and sysctls are the test's
 * alone, and the only traffic is a container's ping of its gateway there.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { freePort, links, nsboxRules, nsboxTableExists, readSysctl, SandboxNs, SysctlGuard, vethName } from "../helpers/net.ts";
import { isOneNsboxLine, lines, type RunOptions, type RunResult, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("net-shared-bridge");
const hostSysctls = new SysctlGuard();
const SUBNET = "10.233.0.0/24";
const GATEWAY = "10.233.0.1";
const PORT = freePort();
let sb: SandboxNs;

/** A state root and a data root of their own, and a network state (NSBOX_NET_STATE) shared by `net` name. */
const root = (name: string, net: string): Record<string, string> => ({
  NSBOX_ROOT: join(ctx.tmp, `${name}-data`),
  NSBOX_STATE: join(ctx.tmp, `${name}-state`),
  NSBOX_NET_STATE: join(ctx.tmp, `${net}-net`),
});
/** A runs the container; B has other records altogether; C shares A's network state but not its state root. */
const A = root("a", "a");
const B = root("b", "b");
const C = root("c", "a");

const nsbox = (env: Record<string, string>, args: string[], o: RunOptions = {}): Promise<RunResult> =>
  ctx.nsbox(args, { timeoutMs: 15000, ...o, prefix: sb.prefix, env: { ...env, ...(o.env ?? {}) } });
async function must(env: Record<string, string>, args: string[]): Promise<RunResult> {
  const r = await nsbox(env, args);
  if (r.code !== 0) throw new Error(`nsbox ${args.join(" ")} exited ${r.code}: ${r.rawStderr}`);
  return r;
}

/** What the container of A needs from the namespace: the bridge, its veth on it, the table and its port rules, forwarding. */
function network(id: string) {
  return {
    bridge: links(sb.path).includes("nsbox0"),
    vethOnBridge: sb.exec(["ip", "-o", "link", "show", "master", "nsbox0"]).stdout.includes(`${vethName(id)}@`),
    table: nsboxTableExists(sb.path),
    portRules: nsboxRules(sb.path).filter((r) => r.comment === `nsbox:${id}`).length,
    ipForward: readSysctl("net.ipv4.ip_forward", sb.path),
  };
}
const pingsGateway = async (id: string) => (await nsbox(A, ["exec", id, "ping", "-c", "1", "-W", "2", GATEWAY])).code === 0;

let id = "";
beforeAll(async () => {
  sb = new SandboxNs("shared");
  sb.exec(["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
  id = (await must(A, ["run", "-d", "--subnet", SUBNET, "-p", `${PORT}:80`, ctx.rootfs, "sleep", "300"])).stdout.trim();
});

// before the helper removes the temporary directory (the roots and network states are in it)
ctx.beforeCleanup(async () => {
  if (!sb) return;
  for (const env of [A, C, B]) {
    const ps = await nsbox(env, ["ps", "-aq", "--no-trunc"]);
    const ids = ps.stdout.split("\n").filter(Boolean);
    if (ids.length) await nsbox(env, ["rm", "-f", ...ids]);
  }
  // A's prune (its records made the bridge, the table and the sysctl changes) takes them all back
  for (const env of [A, B]) await nsbox(env, ["network", "prune"]);
  sb.destroy();
  const moved = hostSysctls.restore();
  if (moved.length) console.error(`net-shared-bridge: host sysctls changed during the tests (restored now): ${moved.join("; ")}`);
});

describe("network prune with other records than the running container's", () => {
  test("the container of A is on the bridge and reaches its gateway", async () => {
    expect(network(id)).toEqual({ bridge: true, vethOnBridge: true, table: true, portRules: 2, ipForward: "1" });
    expect(await pingsGateway(id)).toBe(true);
  });

  // The records of B (another state root and another network state) hold no
  // address: prune used to take the bridge for unused and delete it, with the
  // nft table, cutting A's running container off.
  test("another network state (B): keeps nsbox0, the table, the port rules and forwarding, and says why in one line naming the veth", async () => {
    const r = await must(B, ["network", "prune"]);
    expect({ lines: lines(r.rawStderr), oneLine: isOneNsboxLine(r.rawStderr) }).toEqual({
      lines: [expect.stringMatching(new RegExp(`^nsbox: kept nsbox0: 1 interface is plugged into it .*\\(${vethName(id)}: `))],
      oneLine: true,
    });
    expect(network(id)).toEqual({ bridge: true, vethOnBridge: true, table: true, portRules: 2, ipForward: "1" });
    expect(await pingsGateway(id)).toBe(true);
    // B's inspect shows the interface too, though its records hold no address
    const ins = JSON.parse((await must(B, ["network", "inspect"])).stdout) as { Interfaces: string[]; Addresses: unknown[] };
    expect({ interfaces: ins.Interfaces, addresses: ins.Addresses }).toEqual({ interfaces: [vethName(id)], addresses: [] });
  });

  test("the same network state, another state root (C): keeps it all, naming the container that holds an address", async () => {
    const r = await must(C, ["network", "prune"]);
    expect(lines(r.rawStderr)).toEqual([expect.stringMatching(new RegExp(`^nsbox: kept nsbox0: 1 container holds an address on it \\(${id.slice(0, 12)}\\)`))]);
    expect(network(id)).toEqual({ bridge: true, vethOnBridge: true, table: true, portRules: 2, ipForward: "1" });
  });

  test("once the container is gone, A's prune removes the bridge and the table and restores forwarding", async () => {
    await must(A, ["rm", "-f", id]);
    const r = await must(A, ["network", "prune"]);
    expect(r.rawStderr).toContain("removed the bridge nsbox0 and nsbox's nftables table (no container uses them)");
    expect({ bridge: links(sb.path).includes("nsbox0"), table: nsboxTableExists(sb.path), ipForward: readSysctl("net.ipv4.ip_forward", sb.path) }).toEqual({
      bridge: false,
      table: false,
      ipForward: "0",
    });
    // nothing left to remove: prune says nothing
    expect((await must(B, ["network", "prune"])).rawStderr).toBe("");
    expect(hostSysctls.changed()).toEqual([]);
  });
});
