/**
 * Parsing of docker-style flag values into spec pieces. Every function throws an
 * NsboxError naming the bad input and the expected form, before anything exists.
 */

import { fail } from "../errors.ts";
import { find, map } from "../list.ts";
import { statSync } from "../native/fs.ts";
import { fsErrorSentence, isFsError } from "../state/fserror.ts";
import { isDigits } from "../text.ts";
import type { Mount } from "./spec.ts";

const MAX_ID = 0xfffffffe;

function parseId(text: string, what: string, flag: string): number {
  if (!isDigits(text)) return Number.NaN;
  const n = Number(text);
  if (n > MAX_ID) fail(`${flag} ${what} ${text} is out of range (0-${MAX_ID})`);
  return n;
}

/** "-u uid[:gid]" or "name[:group]"; names are looked up by the caller in the rootfs. */
export function parseUserFlag(text: string): { user: string; group?: string } {
  const [user, group, more] = text.split(":");
  if (!user || group === "" || more !== undefined) fail(`invalid --user "${text}": use uid[:gid] or name[:group], e.g. --user 1000:1000`);
  return { user, group };
}

/** Resolves user/group words to numbers with the container's /etc/passwd and /etc/group texts. */
export function resolveUser(
  text: string,
  passwd: string | undefined,
  group: string | undefined,
): { uid: number; gid: number; home?: string; additionalGids: number[] } {
  const u = parseUserFlag(text);
  const pw = map((passwd ?? "").split("\n"), (l) => l.split(":"));
  const gr = map((group ?? "").split("\n"), (l) => l.split(":"));
  let uid = parseId(u.user, "uid", "--user");
  let entry = Number.isNaN(uid) ? find(pw, (f) => f[0] === u.user) : find(pw, (f) => f[2] === u.user);
  if (Number.isNaN(uid)) {
    if (!entry) fail(`invalid --user "${text}": no user "${u.user}" in the container's /etc/passwd; give a numeric uid instead`);
    uid = Number(entry[2]);
  }
  let gid: number;
  if (u.group !== undefined) {
    gid = parseId(u.group, "gid", "--user");
    if (Number.isNaN(gid)) {
      const g = find(gr, (f) => f[0] === u.group);
      if (!g) fail(`invalid --user "${text}": no group "${u.group}" in the container's /etc/group; give a numeric gid instead`);
      gid = Number(g[2]);
    }
  } else {
    entry ??= find(pw, (f) => f[2] === String(uid));
    gid = entry ? Number(entry[3]) : 0;
  }
  const name = entry?.[0];
  const additionalGids: number[] = [];
  if (name)
    for (const f of gr) {
      const g = Number(f[2]);
      if ((f[3] ?? "").split(",").includes(name) && g !== gid && !Number.isNaN(g)) additionalGids.push(g);
    }
  return { uid, gid, home: entry?.[5] || undefined, additionalGids };
}

/** "-e KEY=VAL" (or "-e KEY" to pass the host's value, as docker does). */
export function parseEnv(items: string[], hostEnv: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const item of items) {
    const eq = item.indexOf("=");
    const key = eq >= 0 ? item.slice(0, eq) : item;
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key)) fail(`invalid --env "${item}": use KEY=VALUE with KEY made of letters, digits and _`);
    if (eq >= 0) out.push(item);
    else if (hostEnv[key] !== undefined) out.push(`${key}=${hostEnv[key]}`);
  }
  return out;
}

/** Merges env lists: later entries replace earlier ones with the same key. */
export function mergeEnv(...lists: string[][]): string[] {
  // (an index per key, not [...map.values()]: a start spreads no iterator, see src/list.ts)
  const out: string[] = [];
  const at = new Map<string, number>();
  for (const l of lists)
    for (const e of l) {
      const key = e.slice(0, e.indexOf("="));
      const i = at.get(key);
      if (i === undefined) {
        at.set(key, out.length);
        out.push(e);
      } else out[i] = e;
    }
  return out;
}

/** A container path: absolute, normalised, never climbing with "..". */
export function containerPath(p: string, flag: string): string {
  if (!p.startsWith("/")) fail(`${flag}: container path "${p}" must be absolute (start with /)`);
  const parts: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join("/")}`;
}

/**
 * Where a volume or tmpfs may not go: the container's root (a mount there is
 * never seen, as docker refuses -v x:/), /dev itself (it would hide the device
 * nodes nsbox makes), and the kernel filesystems nsbox mounts itself, /proc,
 * /sys (with /sys/fs/cgroup) and /dev/pts, or anything inside them. Other paths
 * under /dev are allowed: a device such as /dev/fuse, or /dev/shm (replacing
 * nsbox's, as docker allows).
 */
const RESERVED_EXACT = ["/", "/dev"];
const RESERVED_TREES = ["/proc", "/sys", "/dev/pts"];

export function checkMountTarget(dest: string, flag: string, text: string): string {
  const tree = RESERVED_TREES.find((t) => dest === t || dest.startsWith(`${t}/`));
  if (RESERVED_EXACT.includes(dest) || tree)
    fail(
      `invalid ${flag} "${text}": ${dest === "/" ? "the container's root" : tree ? `${dest} (in ${tree}, which nsbox mounts itself)` : `${dest} (which nsbox mounts itself)`} cannot be a mount target; nsbox refuses /, /dev, and /proc, /sys, /dev/pts and what is inside them (other paths under /dev, e.g. /dev/fuse, are fine)`,
    );
  return dest;
}

/** "-v HOST:CTR[:ro|rw]": a bind mount. HOST must exist (checked by the caller). */
export function parseVolume(text: string): Mount {
  const parts = text.split(":");
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) fail(`invalid --volume "${text}": use HOST_PATH:CONTAINER_PATH[:ro]`);
  const [host, ctr, mode] = parts as [string, string, string | undefined];
  if (!host.startsWith("/")) fail(`invalid --volume "${text}": the host path "${host}" must be absolute`);
  if (mode !== undefined && mode !== "ro" && mode !== "rw") fail(`invalid --volume "${text}": the mode must be ro or rw, not "${mode}"`);
  return {
    destination: checkMountTarget(containerPath(ctr, "--volume"), "--volume", text),
    type: "bind",
    source: host,
    options: ["rbind", mode === "ro" ? "ro" : "rw", "nosuid", "nodev"],
  };
}

/** The host side of a volume must be there and reachable: the cause, in words, when it is not. */
export function checkVolumeSource(source: string, text: string): void {
  try {
    statSync(source);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") fail(`invalid --volume "${text}": the host path ${source} does not exist (create it first)`);
    fail(`invalid --volume "${text}": ${isFsError(e) ? fsErrorSentence(e) : String(e)}`);
  }
}

/** "--tmpfs PATH[:options]": a fresh tmpfs (docker's defaults: nosuid,nodev,noexec). */
export function parseTmpfs(text: string): Mount {
  const colon = text.indexOf(":");
  const path = colon >= 0 ? text.slice(0, colon) : text;
  const opts =
    colon >= 0
      ? text
          .slice(colon + 1)
          .split(",")
          .filter(Boolean)
      : [];
  if (!path) fail(`invalid --tmpfs "${text}": use PATH[:OPTIONS], e.g. --tmpfs /run:size=64m`);
  for (const o of opts) {
    if (!/^(ro|rw|nosuid|suid|nodev|dev|noexec|exec|size=\d+[kmgKMG%]?|mode=[0-7]{3,4}|uid=\d+|gid=\d+|nr_inodes=\d+[kmgKMG]?)$/.test(o))
      fail(`invalid --tmpfs option "${o}" in "${text}": use size=64m, mode=1777, uid=N, gid=N, ro, exec...`);
    const n = /^(uid|gid|size|nr_inodes)=(\d+)/.exec(o);
    // bounded here, not by a mount that fails once the container is half made
    const max = n && (n[1] === "uid" || n[1] === "gid") ? MAX_ID : Number.MAX_SAFE_INTEGER;
    if (n && Number(n[2]) > max) fail(`invalid --tmpfs option "${o}" in "${text}": ${n[1]} ${n[2]} is out of range (0-${max})`);
  }
  return {
    destination: checkMountTarget(containerPath(path, "--tmpfs"), "--tmpfs", text),
    type: "tmpfs",
    source: "tmpfs",
    options: ["nosuid", "nodev", "noexec", ...opts],
  };
}

/** A hostname the kernel accepts (at most 64 bytes) and DNS would. */
export function parseHostname(h: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(h) || h.length > 64)
    fail(`invalid --hostname "${h}": use letters, digits, - and . (at most 64 characters)`);
  return h;
}
