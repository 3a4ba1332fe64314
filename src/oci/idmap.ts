/**
 * OCI idmapped mounts (runtime-spec 1.1: mounts[].uidMappings/gidMappings, and
 * the "idmap"/"ridmap" options of runc and crun): a bind mount whose files
 * show with other owners, with no chown. A file owned by containerID on disk
 * shows as hostID (the user namespace mapping format, as runc and crun write it).
 *
 * As crun and runc: the tree is cloned (open_tree, recursive for rbind) and
 * idmapped (mount_setattr MOUNT_ATTR_IDMAP, recursive for "ridmap") by nsbox,
 * outside the container, through a user namespace carrying the mappings: a
 * process made for it (nsb_userns_holder) whose maps nsbox writes, one per
 * distinct mapping (runc caches them the same way), or the namespace the
 * container joins (linux.namespaces path) for a bare "idmap". Only binds, only
 * as root (runc refuses the rest alike). A bare "idmap" takes the container's
 * own mappings (runc's rule).
 *
 * Unlike crun, which maps through the container's own namespace when the
 * mappings equal it, nsbox always makes its namespace before the container
 * exists: the fds are then inherited by the helper across its fork and
 * attached in place of the mount (C_ATTACH) with no extra sync round; only the
 * mappings count for an idmapped mount, not which namespace holds them.
 * The same machinery makes nsbox's own idmapped --userns rootfs (idmappedTree).
 */

import { MS } from "../config/mountopts.ts";
import type { ContainerSpec, IdMapping, Mount } from "../config/spec.ts";
import { openSync, writeFileSync } from "../native/fs.ts";
import { strerror } from "../native/libc.ts";
import { C, type Op } from "../native/program.ts";
import { idmappedTree, userNamespaceHolder, waitPid } from "../native/spawn.ts";
import { ConfigError, type IdmapRequest } from "./config.ts";

const MOUNT_ATTR: [number, number][] = [
  [MS.RDONLY, 0x1],
  [MS.NOSUID, 0x2],
  [MS.NODEV, 0x4],
  [MS.NOEXEC, 0x8],
];

/**
 * Makes the detached idmapped trees (fds pushed on fds, closed by the caller
 * after the spawn) and turns each one's mount step in c into an attach of its
 * fd. Call before spawning: the helper inherits the fds.
 */
export function attachIdmapped(spec: ContainerSpec, requests: readonly IdmapRequest[], c: Op[], fds: number[]): void {
  if (!requests.length) return;
  const userns = new Map<string, number>();
  const claimed = new Set<Op>();
  for (const r of requests) {
    const nsFd = usernsFor(spec, r, userns, fds);
    const step = mountStep(spec, r, c, claimed);
    const flags = step.fields[3] as number;
    let attrs = 0;
    for (const [ms, attr] of MOUNT_ATTR) if (flags & ms) attrs |= attr;
    const rec = (flags & MS.REC) !== 0;
    const fd = idmappedTree(r.mount.source as string, nsFd, { tree: rec, idmap: r.recursive, attrs, attrsBelow: rec });
    if (fd < 0) throw new ConfigError(`config.json: ${r.at}: cannot idmap ${r.mount.source} for ${r.mount.destination}: ${why(-fd)}`);
    fds.push(fd);
    claimed.add(step);
    c[c.indexOf(step)] = {
      code: C.ATTACH,
      fields: [fd, r.mount.destination, step.fields[5] as number, 1],
      what: `attach the idmapped bind of ${r.mount.source} on ${r.mount.destination}`,
    };
  }
}

/** What the kernel's refusal means here. */
function why(errno: number): string {
  if (errno === 22) return "its filesystem does not support idmapped mounts on this kernel (EINVAL; ext4, xfs, btrfs, tmpfs and overlay do on recent kernels)";
  if (errno === 38) return "this kernel has no idmapped mounts (Linux 5.12 or later is needed)";
  if (errno === 1) return "not permitted (EPERM: is it already an idmapped mount?)";
  return strerror(errno).toLowerCase();
}

/** The C_MOUNT step that plan.ts made for r's mount (the n-th of the same source and destination). */
function mountStep(spec: ContainerSpec, r: IdmapRequest, c: readonly Op[], claimed: Set<Op>): Op {
  const same = (m: Mount) => m.source === r.mount.source && m.destination === r.mount.destination;
  const nth = spec.mounts.filter(same).indexOf(r.mount);
  const steps = c.filter(
    (op) => op.code === C.MOUNT && op.fields[0] === r.mount.source && op.fields[1] === r.mount.destination && ((op.fields[3] as number) & MS.BIND) !== 0,
  );
  const step = steps[nth];
  if (!step || claimed.has(step))
    throw new ConfigError(`config.json: ${r.at}: an idmapped mount needs a mount namespace of the container's own (linux.namespaces)`);
  return step;
}

/** An fd of a user namespace with r's mappings (one per distinct mapping). */
function usernsFor(spec: ContainerSpec, r: IdmapRequest, cache: Map<string, number>, fds: number[]): number {
  let uid = r.uidMappings;
  let gid = r.gidMappings;
  if (!uid || !gid) {
    const joined = spec.linux.namespaces.find((n) => n.type === "user")?.path;
    if (joined) return openNs(joined, r, cache, fds);
    uid = spec.linux.uidMappings ?? [];
    gid = spec.linux.gidMappings ?? [];
  }
  const key = JSON.stringify([uid, gid]);
  const known = cache.get(key);
  if (known !== undefined) return known;
  const pid = userNamespaceHolder();
  if (pid < 0) throw new ConfigError(`config.json: ${r.at}: cannot create a user namespace for its mappings: ${strerror(-pid).toLowerCase()}`);
  const fmt = (maps: IdMapping[]) => maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join("");
  try {
    for (const [file, maps] of [
      ["uid_map", uid],
      ["gid_map", gid],
    ] as const) {
      try {
        writeFileSync(`/proc/${pid}/${file}`, fmt(maps));
      } catch (e) {
        throw new ConfigError(`config.json: ${r.at}: the kernel refused its ${file === "uid_map" ? "uidMappings" : "gidMappings"}: ${(e as Error).message}`);
      }
    }
    const fd = openSync(`/proc/${pid}/ns/user`, "r");
    fds.push(fd);
    cache.set(key, fd);
    return fd;
  } finally {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
    waitPid(pid);
  }
}

function openNs(path: string, r: IdmapRequest, cache: Map<string, number>, fds: number[]): number {
  const known = cache.get(path);
  if (known !== undefined) return known;
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new ConfigError(`config.json: ${r.at}: cannot open the user namespace ${path} for its idmap: ${(e as Error).message}`);
  }
  fds.push(fd);
  cache.set(path, fd);
  return fd;
}
