/**
 * Cgroups for containers: one entry point that detects the host's layout and
 * hands out the v2 or v1 back end. Placement: under nsbox's own cgroup (per
 * controller on v1); on v2 beside it in nsbox.slice unless nsbox runs at the root
 * (see v2.ts); --cgroup-parent places it elsewhere. nsbox never moves a process
 * other than the container's, and removes only the cgroups it created.
 */

import type { Mount, Resources } from "../config/spec.ts";
import { basename } from "../posixpath.ts";
import { rulesNeedCgroup } from "../security/devices.ts";
import { CgroupError, type CgroupRecord, type ContainerCgroup } from "./cgroup.ts";
import { type CgroupHost, detectCgroups } from "./detect.ts";
import { createV1, planV1, V1Cgroup } from "./v1.ts";
import { createV2, planV2, V2Cgroup } from "./v2.ts";

export { CgroupError, type CgroupRecord, type CgroupStats, type ContainerCgroup } from "./cgroup.ts";
export { detectCgroups } from "./detect.ts";
export { cgroupMovesWarm, warmCgroupMoves } from "./warm.ts";

/** A --cgroup-parent: a path in the cgroup hierarchy ("/a/b", "a/b", or "/sys/fs/cgroup/a/b"). */
export function parseCgroupParent(text: string, host: CgroupHost = detectCgroups()): string {
  let p = text.trim();
  const mounts = [host.v2Mount, ...host.v1Mounts.values()].filter((m): m is string => !!m);
  const mount = mounts.find((m) => p === m || p.startsWith(`${m}/`));
  if (mount) p = p.slice(mount.length) || "/";
  else if (p.startsWith("/sys/") || (p.startsWith("/") && /^\/(proc|dev|etc|tmp|var|home|usr|root|run)(\/|$)/.test(p)))
    throw new CgroupError(`--cgroup-parent "${text}" is outside the cgroup filesystem: give a cgroup path such as /nsbox or /system.slice/my.slice`);
  const segs = p.split("/").filter(Boolean);
  if (segs.some((s) => s === ".." || s === "." || !/^[A-Za-z0-9_.:@-]+$/.test(s)))
    throw new CgroupError(`--cgroup-parent "${text}" is not a valid cgroup path (no "..", letters, digits and ._:@- only)`);
  return `/${segs.join("/")}`;
}

/** The container's cgroup nsbox-ID (or `leaf`, for an OCI cgroupsPath) under parent (default: see above). */
export function createCgroup(id: string, res: Resources | undefined, parent?: string, leaf?: string): ContainerCgroup {
  const host = detectCgroups();
  if (host.mode === "none") {
    const { devices, ...limits } = res ?? {};
    if (Object.keys(limits).length) throw new CgroupError("resource limits need cgroups, and no cgroup filesystem is mounted on this host");
    if (rulesNeedCgroup(devices))
      throw new CgroupError(
        "device rules need a cgroup, and no cgroup filesystem is mounted on this host: mount one, or run with --cgroup-manager none (no device isolation)",
      );
    return new V1Cgroup({ version: 1, paths: {}, created: [] });
  }
  return host.mode === "v2" ? createV2(host, id, res, parent, leaf) : createV1(host, id, res, parent, leaf);
}

/**
 * The record that createCgroup(id, ...) will return if no other nsbox changes
 * the parents in between, computed without creating anything: a container's
 * first config.json holds it, and is written again only if the real record
 * differs (see create.ts). Its directories may not exist yet, which release
 * takes in its stride (a missing cgroup is a removed one). undefined when it
 * cannot be told: createCgroup will say why.
 */
export function planCgroup(id: string, res: Resources | undefined, parent?: string, leaf?: string): CgroupRecord | undefined {
  try {
    const host = detectCgroups();
    if (host.mode === "none") return { version: 1, paths: {}, created: [] };
    return host.mode === "v2" ? planV2(host, id, res, parent, leaf) : planV1(host, id, res, parent, leaf);
  } catch {
    return undefined;
  }
}

/** Whether two records name the same cgroups (a planned one and the real one). */
export function sameRecord(a: CgroupRecord | undefined, b: CgroupRecord | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function openCgroup(record: CgroupRecord): ContainerCgroup {
  return record.version === 2 ? new V2Cgroup(record) : new V1Cgroup(record);
}

/**
 * What the container sees at /sys/fs/cgroup: its own cgroup, read-only. On v2 a
 * cgroup2 mount made inside the container's cgroup namespace (whose root is the
 * container's cgroup); on v1 a tmpfs with each controller's directory bound in.
 * With --cgroupns host, the host's tree, read-only.
 */
export function cgroupMountsFor(record: CgroupRecord, privateNs: boolean): Mount[] {
  const host = detectCgroups();
  const ro = ["nosuid", "nodev", "noexec", "ro"];
  if (!privateNs) return [{ destination: "/sys/fs/cgroup", type: "bind", source: "/sys/fs/cgroup", options: ["rbind", ...ro] }];
  if (record.version === 2 && host.mode === "v2") return [{ destination: "/sys/fs/cgroup", type: "cgroup2", source: "cgroup2", options: ro }];
  const mounts: Mount[] = [
    { destination: "/sys/fs/cgroup", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "noexec", "mode=755", "size=64k", "ro"] },
  ];
  const seen = new Set<string>();
  for (const [c, dir] of Object.entries(record.paths)) {
    const mount = host.v1Mounts.get(c);
    if (!mount || seen.has(dir)) continue;
    seen.add(dir);
    mounts.push({ destination: `/sys/fs/cgroup/${basename(mount)}`, type: "bind", source: dir, options: ["bind", ...ro] });
  }
  return mounts;
}
