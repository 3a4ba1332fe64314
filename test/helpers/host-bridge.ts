/**
 * The host's bridge nsbox0 at the end of a test file (see useNsbox).
 *
 * Containers run with the default network plug into nsbox0, which the first of
 * them creates. nsbox does not remove it when its last container goes, as
 * docker keeps docker0: making it again costs the next bridge run a bridge, an
 * nft table (two nft processes) and a note per host sysctl, and `network ls`
 * would show nothing between two runs. So each test file ends with `nsbox
 * network prune`, which removes the bridge, the table and the sysctls nsbox set
 * unless something on the host still uses it (any state's container, whose veth
 * is plugged into it), and then says so in one line ("kept nsbox0: ...").
 *
 * A file may run while others do (other engineers' runs on one machine): the
 * bridge is then someone else's as long as an interface is plugged into it or a
 * container holds an address in the host's network state.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const NAME = "nsbox0";

/** Whether nsbox0 exists in the test's network namespace (the host's: /sys is its sysfs). */
export function bridgeExists(): boolean {
  try {
    readdirSync(`/sys/class/net/${NAME}/brif`);
    return true;
  } catch {
    return false;
  }
}

/** Who uses nsbox0 now: its ports, and the containers holding an address in the host's network state. */
export function bridgeUsers(): string[] {
  let ports: string[] = [];
  try {
    ports = readdirSync(`/sys/class/net/${NAME}/brif`).map((p) => `interface ${p}`);
  } catch {
    return [];
  }
  let held: string[] = [];
  try {
    const dir = process.env.NSBOX_NET_STATE || "/run/nsbox/net";
    const s = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as { addresses?: Record<string, string> };
    held = Object.entries(s.addresses ?? {}).map(([ip, id]) => `address ${ip} of ${id.slice(0, 12)}`);
  } catch {
    // no state: nothing held
  }
  return [...ports, ...held];
}

/**
 * What is wrong with nsbox0 after a file's closing prune (undefined: nothing):
 * `before` is whether it existed when the file started, `ours` the ids of the
 * file's containers, `prune` the prune's exit code and stderr, `again` runs
 * another prune (for a bridge someone else made in the moment since).
 */
export function bridgeLeftover(
  file: string,
  before: boolean,
  ours: string[],
  prune: { code: number; stderr: string },
  again: () => { code: number; stderr: string },
): string | undefined {
  const kept = (r: { stderr: string }) => /^nsbox: kept nsbox0: /m.test(r.stderr);
  // kept for a container of this file (by name, short id or veth): it outlived the file's clean-up
  const mine = (r: { stderr: string }) => ours.filter((id) => kept(r) && r.stderr.includes(id.slice(0, 12)));
  const judge = (r: { code: number; stderr: string }): string | undefined => {
    if (r.code !== 0) return `${file}: the closing "nsbox network prune" failed (exit ${r.code}): ${r.stderr.trim()}`;
    const m = mine(r);
    if (m.length) return `${file}: its container(s) ${m.map((id) => id.slice(0, 12)).join(", ")} still use nsbox0 after its clean-up: ${r.stderr.trim()}`;
    return undefined;
  };
  const first = judge(prune);
  if (first) return first;
  // prune kept it for a user it named, or it is gone, or it is someone else's now
  if (before || kept(prune) || !bridgeExists() || bridgeUsers().length) return undefined;
  // Someone may have made it since, and not recorded yet (the bridge comes a moment before
  // its container's address is written): a second prune either keeps it for them, naming
  // them, or removes it. Only an empty, unused bridge that survives both is a leftover.
  const second = again();
  const wrong = judge(second);
  if (wrong) return wrong;
  if (kept(second) || !bridgeExists()) return undefined;
  return `${file}: left the bridge nsbox0 on the host (it did not exist when the file started, and nothing uses it; "nsbox network prune" said ${JSON.stringify(prune.stderr.trim())}, then ${JSON.stringify(second.stderr.trim())})`;
}
