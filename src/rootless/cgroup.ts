/**
 * Cgroups for a rootless container. A user may create cgroups only where a
 * subtree was delegated to it (cgroup v2: the directory and its cgroup.procs,
 * cgroup.subtree_control and cgroup.threads owned by the user, as systemd's
 * Delegate=yes makes them): nsbox then places containers there as root does
 * (<the parent of nsbox's own cgroup>/nsbox.slice, or --cgroup-parent). Without
 * delegation, a container without limits runs with no cgroup at all, and one
 * with limits is refused before anything is made.
 */

import { detectCgroups } from "../cgroup/index.ts";
import type { Resources } from "../config/spec.ts";
import { fail } from "../errors.ts";
import { accessSync, constants } from "../native/fs.ts";
import { dirname, join } from "../posixpath.ts";

/** The cgroup v2 directory under which a rootless container's cgroup would go, if the user may write there. */
export function delegatedParent(parent: string | undefined, host = detectCgroups()): { dir?: string; why: string } {
  if (host.mode !== "v2" || !host.v2Mount)
    return {
      why: `this host's cgroups are ${host.mode === "none" ? "not mounted" : `${host.mode} (v1 controllers), which cannot be delegated to a user`}: boot with cgroup v2 only (systemd.unified_cgroup_hierarchy=1) and delegate a subtree to you`,
    };
  const own = host.v2Own ?? "/";
  const rel = parent ?? (own === "/" ? "/" : dirname(own));
  const dir = join(host.v2Mount, rel);
  try {
    for (const f of ["", "cgroup.procs", "cgroup.subtree_control"]) accessSync(join(dir, f), constants.W_OK);
    return { dir, why: "" };
  } catch {
    return {
      why: `the cgroup ${dir} is not delegated to you: delegate it (systemd: run nsbox in a user@.service session or a unit with Delegate=yes; by hand: chown it and its cgroup.procs, cgroup.subtree_control and cgroup.threads to you)`,
    };
  }
}

/** The limits the user asked for, by flag name (devices rules are not limits: see security/apply.ts). */
function limitFlags(res: Resources | undefined): string[] {
  if (!res) return [];
  const out: string[] = [];
  if (res.memory?.limit !== undefined) out.push("--memory");
  if (res.memory?.swap !== undefined) out.push("--memory-swap");
  if (res.memory?.reservation !== undefined) out.push("--memory-reservation");
  if (res.cpu) out.push("--cpus/--cpu-shares/--cpuset-*");
  if (res.pids) out.push("--pids-limit");
  if (res.blockIO) out.push("--blkio-weight/--device-*-bps");
  return out;
}

/** Whether a rootless container gets a cgroup; refuses limits that cannot be enforced. */
export function checkRootlessCgroup(res: Resources | undefined, parent: string | undefined): boolean {
  const d = delegatedParent(parent);
  if (d.dir) return true;
  const flags = limitFlags(res);
  if (flags.length) fail(`${flags.join(", ")}: a rootless container gets limits only in a cgroup delegated to you, and ${d.why}; or run without limits`);
  if (parent !== undefined) fail(`--cgroup-parent ${parent}: ${d.why}`);
  return false;
}
