/**
 * Who is calling, and which host ids a rootless container's user namespace maps.
 *
 * As a user other than root, nsbox runs each container in a user namespace whose
 * root is the caller. With ranges for the user in /etc/subuid and /etc/subgid
 * (shadow's format, NAME-or-UID:START:COUNT), ids 1..COUNT inside map to the
 * range, through the setuid helpers newuidmap/newgidmap (Debian's uidmap
 * package): chown inside works and a tarball's owners are kept. Without a range
 * the caller alone is mapped, as `unshare -r` does.
 */

import type { IdMapping } from "../config/spec.ts";
import { readFileSync } from "../native/fs.ts";

/** nsbox runs rootless when its real uid is not 0 (nsbox itself never has a setuid bit). */
export function isRootless(): boolean {
  return process.getuid?.() !== 0;
}

export interface SubRange {
  start: number;
  count: number;
}

/**
 * The first range of /etc/subuid (or /etc/subgid) text for this user, matched by
 * name or by numeric id, as newuidmap matches it. Ranges that would reach uid 0
 * or past 32 bits are skipped: newuidmap would refuse them anyway.
 */
export function subRangeFor(text: string, name: string | undefined, id: number): SubRange | undefined {
  for (const line of text.split("\n")) {
    const parts = line.trim().split(":");
    if (parts.length !== 3 || line.trim().startsWith("#")) continue;
    const [who, s, c] = parts as [string, string, string];
    if (who !== name && who !== String(id)) continue;
    if (!/^\d+$/.test(s) || !/^\d+$/.test(c)) continue;
    const start = Number(s);
    const count = Number(c);
    if (start === 0 || count < 1 || start + count > 0xffffffff) continue;
    return { start, count };
  }
  return undefined;
}

export interface RootlessMapping {
  uid: IdMapping[];
  gid: IdMapping[];
  /** true: the subordinate ranges are mapped too (through newuidmap/newgidmap) */
  ranges: boolean;
  /** why only the caller is mapped (for the one-line note) */
  reason?: string;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** The caller's name from /etc/passwd, as newuidmap finds it (undefined: no entry, match by number only). */
export function userName(uid = process.getuid?.() ?? 0): string | undefined {
  for (const line of readOr("/etc/passwd").split("\n")) {
    const [name, , id] = line.split(":");
    if (id === String(uid) && name) return name;
  }
  return undefined;
}

const HELPERS = ["/usr/bin/newuidmap", "/usr/bin/newgidmap"];

/** The path of a setuid id-map helper (newuidmap, newgidmap), or undefined when missing. */
export function idmapHelper(which: "newuidmap" | "newgidmap"): string | undefined {
  const found = Bun.which(which, { PATH: `${process.env.PATH ?? ""}:/usr/bin:/bin` });
  return found ?? HELPERS.find((p) => p.endsWith(which) && Bun.file(p).size > 0);
}

/** The user namespace mapping for a rootless container of the calling user. */
export function rootlessMapping(files = { subuid: "/etc/subuid", subgid: "/etc/subgid" }): RootlessMapping {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const name = userName();
  const self = { uid: [{ containerID: 0, hostID: uid, size: 1 }], gid: [{ containerID: 0, hostID: gid, size: 1 }] };
  const su = subRangeFor(readOr(files.subuid), name, uid);
  const sg = subRangeFor(readOr(files.subgid), name, uid);
  if (!su || !sg) {
    const missing = !su && !sg ? `${files.subuid} and ${files.subgid}` : !su ? files.subuid : files.subgid;
    return { ...self, ranges: false, reason: `no range for ${name ?? uid} in ${missing}` };
  }
  if (!idmapHelper("newuidmap") || !idmapHelper("newgidmap"))
    return { ...self, ranges: false, reason: "newuidmap/newgidmap are not installed (package uidmap)" };
  return {
    uid: [...self.uid, { containerID: 1, hostID: su.start, size: su.count }],
    gid: [...self.gid, { containerID: 1, hostID: sg.start, size: sg.count }],
    ranges: true,
  };
}

/** How many ids a mapping covers from 0 up without a gap (ids a --user may take). */
export function mappedSize(maps: IdMapping[]): number {
  let next = 0;
  for (const m of [...maps].sort((a, b) => a.containerID - b.containerID)) {
    if (m.containerID !== next) break;
    next += m.size;
  }
  return next;
}

/** True inside a user namespace other than the initial one (its uid_map is not the identity over all ids). */
export function inChildUserNamespace(): boolean {
  try {
    return readFileSync("/proc/self/uid_map", "utf8").trim().split(/\s+/).join(" ") !== "0 0 4294967295";
  } catch {
    return false;
  }
}

/** setgroups is denied in pid's user namespace (a rootless one that maps the caller alone): supplementary groups stay as they are. */
export function setgroupsDenied(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/setgroups`, "utf8").trim() === "deny";
  } catch {
    return false;
  }
}
