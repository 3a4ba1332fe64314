/**
 * Writing a rootless user namespace's id maps from outside, as its owner.
 *
 * The kernel lets an unprivileged owner write one line only: its own uid (and,
 * after "deny" in setgroups, its own gid). A map with subordinate ranges needs
 * CAP_SETUID in the parent namespace, which only the setuid helpers newuidmap
 * and newgidmap have: they check the ranges against /etc/subuid and /etc/subgid
 * and write the maps for us. nsbox itself never holds a privilege.
 */

import type { IdMapping } from "../config/spec.ts";
import { NsboxError } from "../errors.ts";
import { writeFileSync } from "../native/fs.ts";
import { idmapHelper } from "./identity.ts";

const line = (maps: IdMapping[]) => maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join("");

/** The caller alone: uid_map and gid_map written directly, setgroups denied (the kernel's rule for unprivileged gid maps). */
function writeSelfMaps(pid: number, uid: IdMapping[], gid: IdMapping[]): void {
  try {
    writeFileSync(`/proc/${pid}/setgroups`, "deny");
    writeFileSync(`/proc/${pid}/uid_map`, line(uid));
    writeFileSync(`/proc/${pid}/gid_map`, line(gid));
  } catch (e) {
    throw new NsboxError(`cannot write the user namespace's id maps: ${(e as Error).message}`);
  }
}

function runHelper(which: "newuidmap" | "newgidmap", pid: number, maps: IdMapping[]): void {
  const exe = idmapHelper(which);
  if (!exe) throw new NsboxError(`${which} is not installed: install the uidmap package (apt-get install uidmap), or remove your /etc/subuid range`);
  const args = [String(pid), ...maps.flatMap((m) => [String(m.containerID), String(m.hostID), String(m.size)])];
  const r = Bun.spawnSync([exe, ...args], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  if (r.exitCode !== 0) {
    const why = r.stderr.toString().trim().split("\n").pop() || `exit status ${r.exitCode}`;
    throw new NsboxError(
      `${which} refused the map ${maps.map((m) => `${m.containerID}:${m.hostID}:${m.size}`).join(",")} (${why}): check your ranges in /etc/${which === "newuidmap" ? "subuid" : "subgid"} and that ${exe} is setuid root`,
    );
  }
}

/** True when the mapping holds more than the caller's own id (newuidmap/newgidmap needed). */
export const needsHelpers = (uid: IdMapping[], gid: IdMapping[]) => uid.length > 1 || gid.length > 1;

/** Writes the maps of the rootless user namespace of process pid (which waits for them). */
export function writeRootlessIdMaps(pid: number, uid: IdMapping[], gid: IdMapping[]): void {
  if (!needsHelpers(uid, gid)) {
    writeSelfMaps(pid, uid, gid);
    return;
  }
  runHelper("newuidmap", pid, uid);
  runHelper("newgidmap", pid, gid);
}
