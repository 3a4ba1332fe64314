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
 * `before` is whether it existed when the file started, `prune` the prune's
 * exit code and stderr, `ours` the ids of the file's containers, `again` runs another prune (for a bridge someone made
 * and left empty in the moment between the prune and this check).
 */
export function bridgeLeftover(
  file: string,
  before: boolean,
  ours: string[],
  prune: { code: number; stderr: string },
  again: () => { code: number; stderr: string },
): string | undefined {
  if (prune.code !== 0) return `${file}: the closing "nsbox network prune" failed (exit ${prune.code}): ${prune.stderr.trim()}`;
  // kept for a container of this file (by name, short id or veth): it outlived the file's clean-up
  const mine = ours.filter((id) => /^nsbox: kept nsbox0: /m.test(prune.stderr) && prune.stderr.includes(id.slice(0, 12)));
  if (mine.length)
    return `${file}: its container(s) ${mine.map((id) => id.slice(0, 12)).join(", ")} still use nsbox0 after its clean-up: ${prune.stderr.trim()}`;
  if (before || !bridgeExists()) return undefined;
  // prune kept it for a user it named, or one came since: theirs to remove
  if (/^nsbox: kept nsbox0: /m.test(prune.stderr) || bridgeUsers().length) return undefined;
  const second = again();
  if (second.code === 0 && !bridgeExists()) return undefined;
  return `${file}: left the bridge nsbox0 on the host (it did not exist when the file started, and nothing uses it; "nsbox network prune" said ${JSON.stringify(prune.stderr.trim())}, then ${JSON.stringify(second.stderr.trim())})`;
}
