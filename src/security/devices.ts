/**
 * Device rules: which device nodes a container may make (mknod) and open, as
 * OCI linux.resources.devices, with docker's defaults and docker's flags
 * (--device, --device-cgroup-rule, --privileged).
 *
 * The list docker ends up with, by default (moby daemon/pkg/oci/defaults.go
 * gives the first part; runc appends its specconv.AllowedDevices to every
 * container's list, and users cannot turn those off):
 *
 *   deny  a                 everything, then the exceptions below
 *   allow c 1:5 rwm         /dev/zero           (moby)
 *   allow c 1:3 rwm         /dev/null           (moby)
 *   allow c 1:9 rwm         /dev/urandom        (moby)
 *   allow c 1:8 rwm         /dev/random         (moby)
 *   allow c 5:0 rwm         /dev/tty            (moby)
 *   allow c 5:1 rwm         /dev/console        (moby)
 *   deny  c 10:229 rwm      /dev/fuse           (moby: a no-op after "deny a", kept as docker has it)
 *   ...                     --device and --device-cgroup-rule rules, in the order given
 *   allow c *:* m           mknod of any char device   (runc)
 *   allow b *:* m           mknod of any block device  (runc)
 *   allow c 1:3, 1:8, 1:7, 5:0, 1:5, 1:9 rwm   null random full tty zero urandom (runc)
 *   allow c 136:* rwm       the container's pts (runc)
 *   allow c 5:2 rwm         /dev/ptmx           (runc)
 *   allow c 10:200 rwm      /dev/net/tun        (runc keeps it for old docker users)
 *
 * --privileged is one rule, allow a (every device, every access).
 *
 * How a list is read (the kernel's cgroup v1 devices controller, and runc's
 * emulator of it for cgroup v2): an "a" rule resets everything (deny a: nothing
 * is allowed; allow a: everything is); every other rule adds its access to the
 * exceptions when it goes against the current default, or takes it away from
 * the exception with exactly the same type and numbers when it goes with it.
 * Taking access away from a narrower exception than a wildcard one that grants
 * it ("allow c 1:* rwm" then "deny c 1:3 r") cannot be expressed on cgroup v1
 * and is refused, as runc does.
 */

import type { Device } from "../config/spec.ts";
import { map } from "../list.ts";
import { lstatSync, readdirSync, statSync } from "../native/fs.ts";
import { SecurityError } from "./errors.ts";

export type DeviceType = "a" | "c" | "b";

/** One OCI linux.resources.devices entry. */
export interface DeviceRule {
  allow: boolean;
  /** a (every device, the default), c or b */
  type?: DeviceType;
  /** undefined or -1: any */
  major?: number;
  /** undefined or -1: any */
  minor?: number;
  /** a subset of "rwm" (read, write, mknod); undefined: "rwm" */
  access?: string;
}

const rwm = (type: "c" | "b", major: number | undefined, minor: number | undefined, access = "rwm"): DeviceRule => ({
  allow: true,
  type,
  major,
  minor,
  access,
});

/** moby's DefaultLinuxSpec resources.devices (daemon/pkg/oci/defaults.go). */
export const DOCKER_DEVICE_RULES: readonly DeviceRule[] = [
  { allow: false, access: "rwm" },
  rwm("c", 1, 5),
  rwm("c", 1, 3),
  rwm("c", 1, 9),
  rwm("c", 1, 8),
  rwm("c", 5, 0),
  rwm("c", 5, 1),
  { allow: false, type: "c", major: 10, minor: 229, access: "rwm" },
];

/** runc's specconv.AllowedDevices, appended to every container's list. */
export const RUNC_DEVICE_RULES: readonly DeviceRule[] = [
  rwm("c", undefined, undefined, "m"),
  rwm("b", undefined, undefined, "m"),
  rwm("c", 1, 3),
  rwm("c", 1, 8),
  rwm("c", 1, 7),
  rwm("c", 5, 0),
  rwm("c", 1, 5),
  rwm("c", 1, 9),
  rwm("c", 136, undefined),
  rwm("c", 5, 2),
  rwm("c", 10, 200),
];

/** --privileged: every device, every access. */
export function privilegedRules(): DeviceRule[] {
  return [{ allow: true, type: "a", access: "rwm" }];
}

/** The default list, as docker + runc give it to a container without device flags. */
export function defaultDeviceRules(): DeviceRule[] {
  return map([...DOCKER_DEVICE_RULES, ...RUNC_DEVICE_RULES], (r) => ({ ...r }));
}

/**
 * The container's final, ordered list: --privileged alone, or docker's list
 * with the --device rules and then the --device-cgroup-rule rules (raw text,
 * parsed here) where docker puts them.
 */
export function deviceRules(o: { privileged: boolean; devices?: readonly DeviceRule[]; rules?: readonly (string | DeviceRule)[] }): DeviceRule[] {
  if (o.privileged) return privilegedRules();
  const user = map(o.rules ?? [], (r) => (typeof r === "string" ? parseDeviceCgroupRule(r) : r));
  return map([...DOCKER_DEVICE_RULES, ...(o.devices ?? []), ...user, ...RUNC_DEVICE_RULES], (r) => ({ ...r }));
}

/** Linux device numbers: 12-bit majors, 20-bit minors. */
const MAX_MAJOR = 0xfff;
const MAX_MINOR = 0xfffff;

/**
 * docker's --device-cgroup-rule: "TYPE MAJOR:MINOR ACCESS", e.g. "c 1:3 rwm",
 * "b 7:* rw", "c *:* m". TYPE is a, c or b; MAJOR and MINOR a number or *.
 */
export function parseDeviceCgroupRule(text: string): DeviceRule {
  const bad = (why: string): never => {
    throw new SecurityError(`invalid --device-cgroup-rule "${text}": ${why}`);
  };
  const m = /^([acb]) (\d+|\*):(\d+|\*) ([rwm]{1,3})$/.exec(text.trim());
  if (!m) return bad('write "TYPE MAJOR:MINOR ACCESS", TYPE a, c or b, MAJOR and MINOR a number or *, ACCESS letters of rwm (e.g. "c 1:3 rwm")');
  const [, type, ma, mi, acc] = m as unknown as [string, DeviceType, string, string, string];
  const access = normalizeAccess(acc) ?? bad(`the access "${acc}" repeats a letter (use letters of rwm, each once)`);
  const major = ma === "*" ? undefined : Number(ma);
  const minor = mi === "*" ? undefined : Number(mi);
  if (major !== undefined && major > MAX_MAJOR) bad(`major ${major} is out of range (0-${MAX_MAJOR})`);
  if (minor !== undefined && minor > MAX_MINOR) bad(`minor ${minor} is out of range (0-${MAX_MINOR})`);
  // The kernel reads "a" as every device whatever follows: say it in full, so a rule never means more than it shows.
  if (type === "a" && (major !== undefined || minor !== undefined || access !== "rwm"))
    bad('"a" means every device with every access: write "a *:* rwm", or use c or b for a narrower rule');
  return type === "a" ? { allow: true, type, access } : { allow: true, type, major, minor, access };
}

/** "wr" -> "rw"; undefined when a letter repeats or is not one of rwm. */
function normalizeAccess(text: string): string | undefined {
  let out = "";
  for (let i = 0; i < 3; i++) if (text.includes("rwm"[i] as string)) out += "rwm"[i];
  // only r, w and m, each once
  return out.length === text.length ? out : undefined;
}

/** A host device node: what --device needs of a stat. */
export interface HostNode {
  kind: "c" | "b" | "other";
  rdev: number;
  mode: number;
  uid: number;
  gid: number;
}

/** glibc's major()/minor() of a dev_t. */
export function splitDev(rdev: number): { major: number; minor: number } {
  const d = BigInt(rdev);
  return {
    major: Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)),
    minor: Number((d & 0xffn) | ((d >> 12n) & ~0xffn)),
  };
}

/**
 * docker's --device HOST[:CONTAINER][:ACCESS]: the nodes to make in the
 * container's /dev (the host's numbers, mode and owner) and the rules that
 * allow them. The host path must be a device (symlinks are followed, as docker)
 * or a directory: then every device node below it, at the same place below
 * CONTAINER (docker's form for /dev/snd, /dev/dri; symlinks and other files
 * inside are skipped, as docker skips them).
 */
export function parseDeviceFlag(text: string): { node: Device; rule: DeviceRule }[] {
  const { host, path, access } = splitDeviceFlag(text);
  const st = statHost(host, statSync);
  if (st.kind !== "dir") return [deviceFromNode(host, path, access, st)];
  const found: { node: Device; rule: DeviceRule }[] = [];
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const h = `${dir}/${name}`;
      const inner = statHost(h, lstatSync);
      if (inner.kind === "dir") walk(h, `${rel}/${name}`);
      else if (inner.kind !== "other") found.push(deviceFromNode(h, `${path === "/" ? "" : path}${rel}/${name}`, access, inner));
    }
  };
  walk(host.replace(/\/+$/, ""), "");
  if (!found.length) throw new SecurityError(`--device ${host}: the directory holds no device node`);
  return found;
}

function statHost(host: string, how: typeof statSync | typeof lstatSync): HostNode | { kind: "dir" } {
  try {
    const st = how(host);
    if (st.isDirectory()) return { kind: "dir" };
    return { kind: st.isCharacterDevice() ? "c" : st.isBlockDevice() ? "b" : "other", rdev: st.rdev, mode: st.mode, uid: st.uid, gid: st.gid };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SecurityError(
      code === "ENOENT" || code === "ENOTDIR" ? `--device ${host}: no such file` : `--device ${host}: cannot read it (${code ?? String(e)})`,
    );
  }
}

/** The parts of a --device value, checked (the host path is not looked at). */
export function splitDeviceFlag(text: string): { host: string; path: string; access: string } {
  const bad = (why: string): never => {
    throw new SecurityError(`invalid --device "${text}": ${why}`);
  };
  const parts = text.split(":");
  if (parts.length > 3 || parts.some((p) => p === "")) bad("write HOST[:CONTAINER][:ACCESS], e.g. /dev/fuse or /dev/sdb:/dev/xvdb:r");
  const host = parts[0] as string;
  let path = host;
  let access = "rwm";
  if (parts.length === 2) {
    // the second part is the access when it reads like one (docker's rule), else the path in the container
    const acc = normalizeAccess(parts[1] as string);
    if (acc) access = acc;
    else path = parts[1] as string;
  } else if (parts.length === 3) {
    path = parts[1] as string;
    access = normalizeAccess(parts[2] as string) ?? bad(`the access "${parts[2]}" must be letters of rwm, each once`);
  }
  if (!host.startsWith("/")) bad(`the host path ${host} must be absolute (e.g. /dev/${host})`);
  if (!path.startsWith("/")) bad(`the path in the container ${path} must be absolute`);
  if (path.split("/").includes("..")) bad(`the path in the container ${path} must not contain ".."`);
  return { host, path: path.replace(/\/+$/, "") || "/", access };
}

/** The node and rule for a --device whose host path was stat'ed (pure, for tests). */
export function deviceFromNode(host: string, path: string, access: string, st: HostNode): { node: Device; rule: DeviceRule } {
  if (st.kind === "other")
    throw new SecurityError(`--device ${host}: is not a device (give a character or block device node, e.g. /dev/fuse, or a directory of them)`);
  const { major, minor } = splitDev(st.rdev);
  return {
    node: { path, hostPath: host, type: st.kind, major, minor, fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid },
    rule: { allow: true, type: st.kind, major, minor, access },
  };
}

/**
 * A rule as the kernel's devices.allow/devices.deny/devices.list spell it:
 * "c 1:3 rwm", "b *:* m", "a *:* rwm".
 */
export function cgroupLine(r: DeviceRule): string {
  const n = (v: number | undefined) => (v === undefined || v < 0 ? "*" : String(v));
  return `${r.type ?? "a"} ${n(r.major)}:${n(r.minor)} ${normalizeAccess(r.access ?? "rwm") ?? r.access}`;
}

/**
 * What a list of rules comes to: a default (allow or deny everything) and the
 * exceptions to it, each a c or b rule whose `allow` is the opposite of the
 * default, one per (type, major, minor), in a stable order. runc's emulator
 * (opencontainers/cgroups devices/devices_emulator.go).
 */
export interface DeviceRuleSet {
  readonly defaultAllow: boolean;
  readonly exceptions: readonly Readonly<DeviceRule>[];
}

/** Lists already reduced by this process, by their text: a run asks for the same list three times (plan, create, apply). */
const reduced = new Map<string, DeviceRuleSet>();

/**
 * reduceRules(defaultDeviceRules()), written out: nearly every container has that
 * list, and reducing it is ~0.3 ms of a start (code that runs once, cold).
 * test/unit/devices.test.ts checks it against the reduction.
 */
export const DEFAULT_RULE_SET: DeviceRuleSet = {
  defaultAllow: false,
  exceptions: [
    rwm("c", 1, 5),
    rwm("c", 1, 3),
    rwm("c", 1, 9),
    rwm("c", 1, 8),
    rwm("c", 5, 0),
    rwm("c", 5, 1),
    rwm("c", undefined, undefined, "m"),
    rwm("b", undefined, undefined, "m"),
    rwm("c", 1, 7),
    rwm("c", 136, undefined),
    rwm("c", 5, 2),
    rwm("c", 10, 200),
  ],
};
let defaultKey: string | undefined;

/** The reduced set of a list (shared between callers: read only). */
export function effectiveRules(rules: readonly DeviceRule[]): DeviceRuleSet {
  const key = JSON.stringify(rules);
  let set = reduced.get(key);
  if (!set) {
    defaultKey ??= JSON.stringify(defaultDeviceRules());
    set = key === defaultKey ? DEFAULT_RULE_SET : reduceRules(rules);
    reduced.set(key, set);
  }
  return set;
}

/** (exported for the test of DEFAULT_RULE_SET) */
export function reduceRules(rules: readonly DeviceRule[]): DeviceRuleSet {
  let defaultAllow = false;
  // key "c 1:3" (wildcards as -1) -> access letters
  let ex = new Map<string, { type: "c" | "b"; major: number; minor: number; access: Set<string> }>();
  const key = (t: string, ma: number, mi: number) => `${t} ${ma}:${mi}`;
  for (const r of rules) {
    const access = normalizeAccess(r.access ?? "rwm");
    if (access === undefined || access === "") throw new SecurityError(`invalid device rule "${cgroupLine(r)}": the access must be letters of rwm`);
    if ((r.type ?? "a") === "a") {
      defaultAllow = r.allow;
      ex = new Map();
      continue;
    }
    const type = r.type as "c" | "b";
    if (type !== "c" && type !== "b") throw new SecurityError(`invalid device rule type "${type}": use a, c or b`);
    const major = r.major === undefined || r.major < 0 ? -1 : r.major;
    const minor = r.minor === undefined || r.minor < 0 ? -1 : r.minor;
    const k = key(type, major, minor);
    if (r.allow !== defaultAllow) {
      const cur = ex.get(k) ?? { type, major, minor, access: new Set<string>() };
      for (const c of access) cur.access.add(c);
      ex.set(k, cur);
      continue;
    }
    // Going with the default: take the access away from the exact exception, if
    // no wildcard exception above it grants it (v1 could not express the hole).
    for (const [pm, pn] of [
      [-1, minor],
      [major, -1],
      [-1, -1],
    ] as const) {
      if (pm === major && pn === minor) continue;
      const wide = ex.get(key(type, pm, pn));
      if (wide && [...access].some((c) => wide.access.has(c)))
        throw new SecurityError(
          `the device rule "${cgroupLine(r)}" cannot take access away from the wider rule "${cgroupLine({ allow: !defaultAllow, type, major: pm, minor: pn, access: [...wide.access].join("") })}" (cgroup v1 cannot punch a hole in a wildcard rule)`,
        );
    }
    const cur = ex.get(k);
    if (!cur) continue;
    for (const c of access) cur.access.delete(c);
    if (cur.access.size === 0) ex.delete(k);
  }
  // In the order the rules first named them: v1's devices.list keeps the order
  // of the writes, and OCI asks for the listed order (runtime-tools checks it).
  const exceptions = [...ex.values()].map((e) => ({
    allow: !defaultAllow,
    type: e.type,
    major: e.major < 0 ? undefined : e.major,
    minor: e.minor < 0 ? undefined : e.minor,
    access: normalizeAccess([...e.access].join("")) as string,
  }));
  return { defaultAllow, exceptions };
}

/** Whether the rules restrict anything (so need a devices cgroup or program): all but "allow everything". */
export function rulesNeedCgroup(rules: readonly DeviceRule[] | undefined): boolean {
  if (!rules || rules.length === 0) return false;
  const set = effectiveRules(rules);
  return !(set.defaultAllow && set.exceptions.length === 0);
}

/**
 * Whether a device access is allowed, as the kernel's v1 controller decides:
 * access is one or more of "rwm" (an open for reading and writing asks "rw" at
 * once). Allowed by default: unless any part of it hits a deny exception.
 * Denied by default: unless one allow exception grants all of it.
 */
export function isAllowed(set: DeviceRuleSet, type: "c" | "b", major: number, minor: number, access: string): boolean {
  const hits = set.exceptions.filter((e) => e.type === type && (e.major === undefined || e.major === major) && (e.minor === undefined || e.minor === minor));
  if (set.defaultAllow) return !hits.some((e) => [...access].some((c) => (e.access ?? "rwm").includes(c)));
  return hits.some((e) => [...access].every((c) => (e.access ?? "rwm").includes(c)));
}
