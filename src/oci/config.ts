/**
 * An OCI bundle's config.json -> ContainerSpec (runtime-spec 1.0-1.2, Linux).
 *
 * ContainerSpec is already OCI-shaped, so most fields map one to one. What nsbox
 * cannot honour is refused with one sentence naming the field: a runtime that
 * silently drops `linux.intelRdt` or a mount option would run something other
 * than what the client asked for. Unknown fields are ignored, as the spec says
 * of extensions, but listed under --debug.
 */

import { defaultDevices } from "../config/defaults.ts";
import { MS, mountFlags } from "../config/mountopts.ts";
import type { ContainerSpec, Device, IdMapping, Mount, Namespace, NamespaceType, Resources } from "../config/spec.ts";
import { NsboxError } from "../errors.ts";
import { log } from "../log.ts";
import { existsSync, readFileSync, statSync } from "../native/fs.ts";
import { isAbsolute, join, resolve } from "../posixpath.ts";
import { CAP_NAMES, type Capabilities } from "../security/capabilities.ts";
import type { DeviceRule } from "../security/devices.ts";
import { parseJsonExact } from "../security/seccomp/json.ts";
import { SPEC_VERSION } from "./dispatch.ts";

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}
export const HOOK_KINDS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] as const;
export type HookKind = (typeof HOOK_KINDS)[number];
export type Hooks = Partial<Record<HookKind, Hook[]>>;

export interface Bundle {
  /** absolute bundle directory */
  dir: string;
  spec: ContainerSpec;
  hooks: Hooks;
  annotations: Record<string, string>;
  /** unified cgroup v2 files to write (linux.resources.unified) */
  unified?: Record<string, string>;
  /** cgroup v1 files to write beside nsbox's own resources (swappiness, the OOM killer); ignored on v2, as runc */
  v1Files?: V1File[];
  /** the apparmor profile to exec into (only when the host enforces apparmor) */
  apparmor?: string;
  /** idmapped bind mounts (see idmap.ts) */
  idmapped: IdmapRequest[];
}

/** An idmapped bind mount of config.json (made by idmap.ts). */
export interface IdmapRequest {
  /** the mount in spec.mounts (options without the idmap words) */
  mount: Mount;
  /** "mounts[3]", for errors */
  at: string;
  /** undefined: a bare idmap/ridmap, which takes the container's user namespace mappings */
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  /** ridmap: the mounts below the bind's source are idmapped too */
  recursive: boolean;
}

export interface V1File {
  controller: string;
  file: string;
  value: string;
  /** the config field, for errors */
  what: string;
  /** deprecated by the kernel: a failed write is a warning */
  optional?: boolean;
}

/** A bad config.json: one line, exit 1 as runc. */
export class ConfigError extends NsboxError {
  constructor(message: string) {
    super(message, 1);
  }
}

type Obj = Record<string, unknown>;
const bad = (what: string, why: string): never => {
  throw new ConfigError(`config.json: ${what} ${why}`);
};
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const obj = (v: unknown, what: string): Obj => (v === undefined || v === null ? {} : isObj(v) ? v : bad(what, "must be an object"));
const strs = (v: unknown, what: string): string[] => {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) return bad(what, "must be a list of strings");
  return v as string[];
};
const int = (v: unknown, what: string, min = -(2 ** 53), max = 2 ** 53): number => {
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) return bad(what, `must be an integer between ${min} and ${max}`);
  return n;
};
const optInt = (v: unknown, what: string, min?: number, max?: number) => (v === undefined || v === null ? undefined : int(v, what, min, max));
const str = (v: unknown, what: string): string => (typeof v === "string" ? v : bad(what, "must be a string"));
/** Refuses a field that is set to something other than its zero value. */
function refuse(o: Obj, key: string, at: string, why = "is not supported by nsbox") {
  const v = o[key];
  const empty = v === undefined || v === null || v === false || v === "" || (Array.isArray(v) && v.length === 0) || (isObj(v) && Object.keys(v).length === 0);
  if (!empty) bad(`${at}${key}`, `${why}: remove it from config.json or use runc/crun`);
}
function unknownKeys(o: Obj, known: string[], at: string) {
  for (const k of Object.keys(o)) if (!known.includes(k)) log.debug(`config.json: ignoring the unknown field ${at}${k}`);
}

const NS_TYPES: Record<string, NamespaceType> = {
  pid: "pid",
  network: "network",
  net: "network",
  mount: "mount",
  ipc: "ipc",
  uts: "uts",
  user: "user",
  cgroup: "cgroup",
  time: "time",
};

/** The runtime-spec versions nsbox follows: 1.0.x to 1.2.x. */
export { SPEC_VERSION };

const SUPPORTED_VERSION = /^1\.[012]\.\d+(-[0-9A-Za-z.+-]+)?$/;

export function loadBundle(bundleArg: string): Bundle {
  const dir = resolve(bundleArg);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new ConfigError(`bundle ${bundleArg} is not a directory: give the bundle's directory with --bundle`);
  const file = join(dir, "config.json");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new ConfigError(`bundle ${bundleArg} has no config.json: create one (nsbox spec --bundle ${bundleArg}) or give the right --bundle`);
  }
  let data: unknown;
  try {
    data = parseJsonExact(text, `${file}`);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (!isObj(data)) throw new ConfigError(`${file} must hold a JSON object`);
  return parseConfig(data, dir);
}

export function parseConfig(c: Obj, dir: string): Bundle {
  unknownKeys(c, ["ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks", "annotations", "linux"], "");
  for (const k of ["solaris", "windows", "vm", "zos"]) refuse(c, k, "", "is for another platform");
  if (c.ociVersion === undefined) bad("ociVersion", 'is missing (e.g. "ociVersion": "1.0.2")');
  const version = str(c.ociVersion, "ociVersion");
  if (!SUPPORTED_VERSION.test(version)) bad("ociVersion", `${JSON.stringify(version)} is not supported: nsbox follows runtime-spec 1.0.x to 1.2.x`);

  // root
  if (!isObj(c.root)) bad("root", 'is missing ("root": {"path": "rootfs"})');
  const root = c.root as Obj;
  const rootPath = str(root.path, "root.path");
  const rootAbs = isAbsolute(rootPath) ? rootPath : join(dir, rootPath);
  if (!existsSync(rootAbs) || !statSync(rootAbs).isDirectory())
    bad("root.path", `${rootAbs} is not a directory: unpack the root filesystem there or fix root.path`);

  const linux = obj(c.linux, "linux");
  const proc = parseProcess(c.process);
  const namespaces = parseNamespaces(linux.namespaces);
  const idMaps = { uid: parseIdMaps(linux.uidMappings, "linux.uidMappings"), gid: parseIdMaps(linux.gidMappings, "linux.gidMappings") };
  const idmapped: IdmapRequest[] = [];
  const mounts = (Array.isArray(c.mounts) ? c.mounts : c.mounts === undefined ? [] : bad("mounts", "must be a list")).map((m, i) =>
    parseMount(m, i, dir, idmapped, idMaps),
  );
  // As runc: a bare idmap takes the container's mappings, so there must be some
  for (const r of idmapped)
    if (!r.uidMappings && !namespaces.some((n) => n.type === "user"))
      bad(
        `${r.at}.options`,
        "idmap without uidMappings/gidMappings takes the container's user namespace mappings, and there is no user namespace (linux.namespaces)",
      );
  const hostname = c.hostname === undefined ? "" : str(c.hostname, "hostname");
  if (hostname && !namespaces.some((n) => n.type === "uts")) bad("hostname", "needs a new uts namespace (linux.namespaces)");
  const domainname = c.domainname === undefined ? undefined : str(c.domainname, "domainname");
  if (domainname && !namespaces.some((n) => n.type === "uts" && !n.path)) bad("domainname", "needs a new uts namespace (linux.namespaces)");

  unknownKeys(
    linux,
    [
      "namespaces",
      "uidMappings",
      "gidMappings",
      "devices",
      "cgroupsPath",
      "resources",
      "sysctl",
      "seccomp",
      "rootfsPropagation",
      "maskedPaths",
      "readonlyPaths",
      "mountLabel",
      "personality",
      "timeOffsets",
      "intelRdt",
      "memoryPolicy",
      "netDevices",
    ],
    "linux.",
  );
  refuse(linux, "intelRdt", "linux.");
  refuse(linux, "memoryPolicy", "linux.");
  refuse(linux, "netDevices", "linux.");
  if (linux.mountLabel) selinux("linux.mountLabel");
  const prop = linux.rootfsPropagation === undefined || linux.rootfsPropagation === null ? undefined : str(linux.rootfsPropagation, "linux.rootfsPropagation");
  if (prop !== undefined && !["", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"].includes(prop))
    bad("linux.rootfsPropagation", `${JSON.stringify(prop)} must be one of private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable`);

  const { resources, unified, v1Files } = parseResources(linux.resources);
  const devices = parseDevices(linux.devices);
  // As runc: after the config's rules, the devices every container may use, and those it lists.
  const listed: DeviceRule[] = devices.flatMap((d): DeviceRule[] =>
    d.type === "p" ? [] : [{ allow: true, type: d.type, major: d.major, minor: d.minor, access: "rwm" }],
  );
  if (resources?.devices) resources.devices = [...resources.devices, ...ALLOWED_DEVICES, ...listed];
  const spec: ContainerSpec = {
    ociVersion: version,
    process: proc.process,
    root: { path: rootAbs, readonly: root.readonly === true },
    hostname,
    domainname: domainname || undefined,
    mounts,
    linux: {
      namespaces,
      uidMappings: idMaps.uid,
      gidMappings: idMaps.gid,
      devices,
      cgroupsPath: linux.cgroupsPath === undefined ? undefined : str(linux.cgroupsPath, "linux.cgroupsPath"),
      resources,
      maskedPaths: strs(linux.maskedPaths, "linux.maskedPaths"),
      readonlyPaths: strs(linux.readonlyPaths, "linux.readonlyPaths"),
      sysctl: parseSysctl(linux.sysctl),
      personality: parsePersonality(linux.personality),
      rootfsPropagation: prop || undefined,
      timeOffsets: parseTimeOffsets(linux.timeOffsets, namespaces),
    },
    nsbox: {
      rootfsArg: rootAbs,
      init: false,
      interactive: true,
      overlay: false,
      cgroups: true,
      network: { mode: "none" } as ContainerSpec["nsbox"]["network"],
    },
  };
  if ((spec.linux.uidMappings?.length || spec.linux.gidMappings?.length) && !namespaces.some((n) => n.type === "user"))
    bad("linux.uidMappings", "needs a user namespace (linux.namespaces)");
  if (linux.seccomp !== undefined && linux.seccomp !== null) spec.linux.seccomp = parseSeccompShape(linux.seccomp);
  return { dir, spec, hooks: parseHooks(c.hooks), annotations: parseAnnotations(c.annotations), unified, v1Files, apparmor: proc.apparmor, idmapped };
}

function selinux(what: string) {
  if (existsSync("/sys/fs/selinux/enforce") && readFileSync("/sys/fs/selinux/enforce", "utf8").trim() === "1")
    bad(what, "asks for an SELinux label, which nsbox cannot apply on this SELinux-enforcing host");
  log.warn(`config.json: ${what} is not applied: SELinux is not enforcing on this host`);
}

function apparmorEnabled(): boolean {
  try {
    return readFileSync("/sys/module/apparmor/parameters/enabled", "utf8").trim() === "Y";
  } catch {
    return false;
  }
}

export function parseProcess(v: unknown): { process: ContainerSpec["process"]; apparmor?: string } {
  if (!isObj(v)) return bad("process", "is missing (it says what to run)");
  const p = v;
  unknownKeys(
    p,
    [
      "terminal",
      "consoleSize",
      "user",
      "args",
      "commandLine",
      "env",
      "cwd",
      "capabilities",
      "rlimits",
      "noNewPrivileges",
      "apparmorProfile",
      "oomScoreAdj",
      "selinuxLabel",
      "ioPriority",
      "scheduler",
      "execCPUAffinity",
    ],
    "process.",
  );
  refuse(p, "commandLine", "process.", "is for Windows");
  refuse(p, "ioPriority", "process.");
  refuse(p, "scheduler", "process.");
  refuse(p, "execCPUAffinity", "process.");
  const args = strs(p.args, "process.args");
  if (!args.length) bad("process.args", "is missing or empty: say what to run");
  const cwd = p.cwd === undefined ? "/" : str(p.cwd, "process.cwd");
  if (!cwd.startsWith("/")) bad("process.cwd", `${JSON.stringify(cwd)} must be an absolute path`);
  const u = obj(p.user, "process.user");
  refuse(u, "username", "process.user.", "is for Windows");
  const uid = int(u.uid ?? 0, "process.user.uid", 0, 2 ** 32 - 2);
  const gid = int(u.gid ?? 0, "process.user.gid", 0, 2 ** 32 - 2);
  const additionalGids = (
    Array.isArray(u.additionalGids) ? u.additionalGids : u.additionalGids == null ? [] : bad("process.user.additionalGids", "must be a list")
  ).map((g, i) => int(g, `process.user.additionalGids[${i}]`, 0, 2 ** 32 - 2));
  const umask = optInt(u.umask, "process.user.umask", 0, 0o777);
  const cs = p.consoleSize === undefined || p.consoleSize === null ? undefined : obj(p.consoleSize, "process.consoleSize");
  const consoleSize = cs
    ? { height: int(cs.height ?? 0, "process.consoleSize.height", 0, 65535), width: int(cs.width ?? 0, "process.consoleSize.width", 0, 65535) }
    : undefined;
  let apparmor: string | undefined;
  if (p.apparmorProfile) {
    const prof = str(p.apparmorProfile, "process.apparmorProfile");
    if (apparmorEnabled()) apparmor = prof;
    else log.warn(`config.json: process.apparmorProfile ${prof} is not applied: AppArmor is not enabled on this host`);
  }
  if (p.selinuxLabel) selinux("process.selinuxLabel");
  return {
    apparmor,
    process: {
      terminal: p.terminal === true,
      consoleSize,
      user: { uid, gid, additionalGids, umask, name: `${uid}:${gid}` },
      args,
      env: strs(p.env, "process.env"),
      cwd,
      noNewPrivileges: p.noNewPrivileges === true,
      capabilities: parseCaps(p.capabilities),
      rlimits: parseRlimits(p.rlimits),
      oomScoreAdj: optInt(p.oomScoreAdj, "process.oomScoreAdj", -1000, 1000),
    },
  };
}

/** Absent sets are empty, as runc reads them. */
function parseCaps(v: unknown): Capabilities | undefined {
  if (v === undefined || v === null) return { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] };
  const c = obj(v, "process.capabilities");
  // An unknown name (a newer kernel's, or a typo) is skipped with a warning, as
  // runc and crun do: the container runs without it.
  const set = (k: string) =>
    strs(c[k], `process.capabilities.${k}`).filter((n) => {
      if ((CAP_NAMES as readonly string[]).includes(n)) return true;
      log.warn(`config.json: process.capabilities.${k}: ignoring the unknown capability ${JSON.stringify(n)}`);
      return false;
    });
  const caps = {
    bounding: set("bounding"),
    effective: set("effective"),
    permitted: set("permitted"),
    inheritable: set("inheritable"),
    ambient: set("ambient"),
  };
  // The kernel raises an ambient capability only if it is permitted and
  // inheritable; runc skips the others with a warning, and so does nsbox.
  const skipped = caps.ambient.filter((c) => !caps.permitted.includes(c) || !caps.inheritable.includes(c));
  if (skipped.length) log.warn(`config.json: process.capabilities.ambient ${skipped.join(", ")} not raised: not in both permitted and inheritable`);
  caps.ambient = caps.ambient.filter((c) => !skipped.includes(c));
  return caps;
}

export const RLIMITS = [
  "RLIMIT_CPU",
  "RLIMIT_FSIZE",
  "RLIMIT_DATA",
  "RLIMIT_STACK",
  "RLIMIT_CORE",
  "RLIMIT_RSS",
  "RLIMIT_NPROC",
  "RLIMIT_NOFILE",
  "RLIMIT_MEMLOCK",
  "RLIMIT_AS",
  "RLIMIT_LOCKS",
  "RLIMIT_SIGPENDING",
  "RLIMIT_MSGQUEUE",
  "RLIMIT_NICE",
  "RLIMIT_RTPRIO",
  "RLIMIT_RTTIME",
];

function parseRlimits(v: unknown) {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) return bad("process.rlimits", "must be a list");
  const seen = new Set<string>();
  return v.map((r, i) => {
    const o = obj(r, `process.rlimits[${i}]`);
    const type = str(o.type, `process.rlimits[${i}].type`);
    if (!RLIMITS.includes(type)) bad(`process.rlimits[${i}].type`, `${JSON.stringify(type)} is not an RLIMIT_* name`);
    if (seen.has(type)) bad(`process.rlimits[${i}]`, `sets ${type} twice`);
    seen.add(type);
    // 2^64-1 (RLIM_INFINITY) arrives as a bigint
    const lim = (x: unknown, k: string) => (typeof x === "bigint" ? (x >= 2n ** 64n - 1n ? -1 : Number(x)) : int(x, `process.rlimits[${i}].${k}`, -1));
    const soft = lim(o.soft, "soft");
    const hard = lim(o.hard, "hard");
    if (hard !== -1 && (soft === -1 || soft > hard)) bad(`process.rlimits[${i}]`, `${type}: soft ${soft} is above hard ${hard}`);
    return { type, soft, hard };
  });
}

function parseNamespaces(v: unknown): Namespace[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return bad("linux.namespaces", "must be a list");
  const out: Namespace[] = [];
  for (const [i, n] of v.entries()) {
    const o = obj(n, `linux.namespaces[${i}]`);
    const t = str(o.type, `linux.namespaces[${i}].type`);
    const type = NS_TYPES[t];
    if (!type) bad(`linux.namespaces[${i}].type`, `${JSON.stringify(t)} is not a namespace type (pid, network, mount, ipc, uts, user, cgroup, time)`);
    if (out.some((x) => x.type === type)) bad("linux.namespaces", `lists the ${t} namespace twice`);
    const path = o.path === undefined || o.path === "" ? undefined : str(o.path, `linux.namespaces[${i}].path`);
    if (path && !existsSync(path)) bad(`linux.namespaces[${i}].path`, `${path} does not exist`);
    out.push(path ? { type: type as NamespaceType, path } : { type: type as NamespaceType });
  }
  return out;
}

function parseIdMaps(v: unknown, what: string) {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) return bad(what, "must be a list");
  return v.map((m, i) => {
    const o = obj(m, `${what}[${i}]`);
    return {
      containerID: int(o.containerID, `${what}[${i}].containerID`, 0, 2 ** 32 - 1),
      hostID: int(o.hostID, `${what}[${i}].hostID`, 0, 2 ** 32 - 1),
      size: int(o.size, `${what}[${i}].size`, 1, 2 ** 32 - 1),
    };
  });
}

/** Mount options nsbox gives to mount(2) for a bind mount; anything else would be dropped by the kernel. */
export const BIND_MOUNT_OPTIONS = [
  "ro",
  "rw",
  "nosuid",
  "suid",
  "nodev",
  "dev",
  "noexec",
  "exec",
  "bind",
  "rbind",
  "private",
  "rprivate",
  "slave",
  "rslave",
  "shared",
  "rshared",
  "unbindable",
  "runbindable",
  "noatime",
  "atime",
  "nodiratime",
  "diratime",
  "relatime",
  "norelatime",
  "strictatime",
  "nostrictatime",
  "sync",
  "async",
  "dirsync",
  "defaults",
];
const BIND_OPTS = new Set(BIND_MOUNT_OPTIONS);

type ContainerMaps = { uid?: IdMapping[]; gid?: IdMapping[] };

function parseMount(v: unknown, i: number, dir: string, idmapped: IdmapRequest[], maps: ContainerMaps): Mount {
  const at = `mounts[${i}]`;
  const o = obj(v, at);
  unknownKeys(o, ["destination", "type", "source", "options", "uidMappings", "gidMappings"], `${at}.`);
  const destination = str(o.destination, `${at}.destination`);
  if (!destination.startsWith("/")) bad(`${at}.destination`, `${JSON.stringify(destination)} must be an absolute path`);
  const words = strs(o.options, `${at}.options`);
  const type = o.type === undefined ? undefined : str(o.type, `${at}.type`);
  let source = o.source === undefined ? undefined : str(o.source, `${at}.source`);
  const idmapWords = words.filter((w) => w === "idmap" || w === "ridmap" || w.startsWith("idmap=") || w.startsWith("ridmap="));
  const options = words.filter((w) => !idmapWords.includes(w));
  const { flags } = mountFlags(options);
  const bind = type === "bind" || (flags & MS.BIND) !== 0;
  if (bind) {
    // runc and crun pass data words (mode=755, size=...) of a bind to mount(2),
    // which ignores them for MS_BIND: nsbox drops them, and says so under --debug.
    // A word without "=" (rro...) asks for something: refused.
    for (const opt of options)
      if (!BIND_OPTS.has(opt) && !opt.includes("="))
        bad(`${at}.options`, `${JSON.stringify(opt)} on the bind mount of ${destination} is not supported by nsbox`);
    const dropped = options.filter((opt) => !BIND_OPTS.has(opt));
    if (dropped.length) log.debug(`config.json: ${at}.options ${dropped.join(",")} do not apply to the bind mount of ${destination}: ignored`);
    if (!source) bad(`${at}.source`, `is missing for the bind mount of ${destination}`);
    if (source && !isAbsolute(source)) source = join(dir, source);
    if (source && !existsSync(source)) bad(`${at}.source`, `${source} does not exist (bind mount of ${destination})`);
  }
  const mount: Mount = { destination, type: bind ? "bind" : type, source, options: bind ? options.filter((opt) => BIND_OPTS.has(opt)) : options };
  const request = parseIdmap(o, at, idmapWords, bind, mount, maps);
  if (request) idmapped.push(request);
  return mount;
}

/**
 * mounts[i].uidMappings/gidMappings and the idmap/ridmap options, checked as runc
 * checks them; crun's idmap=uids=...;gids=... is read as crun reads it.
 */
function parseIdmap(o: Obj, at: string, words: string[], bind: boolean, mount: Mount, maps: ContainerMaps): IdmapRequest | undefined {
  let uidMappings = parseIdMaps(o.uidMappings, `${at}.uidMappings`);
  let gidMappings = parseIdMaps(o.gidMappings, `${at}.gidMappings`);
  if (!words.length && !uidMappings?.length && !gidMappings?.length) return undefined;
  const what = `the idmapped mount of ${mount.destination}`;
  if (words.length > 1) bad(`${at}.options`, `give one of idmap and ridmap for ${what}`);
  const word = words[0] ?? "";
  if (word.includes("=")) {
    if (uidMappings?.length || gidMappings?.length) bad(at, `${what} has mappings in both ${JSON.stringify(word)} and uidMappings/gidMappings: give one`);
    ({ uidMappings, gidMappings } = crunIdmapOption(word, `${at}.options`, maps));
  }
  if (!bind) bad(at, `${what} must be a bind mount (type bind, or the bind/rbind option): nsbox, as runc, idmaps only binds`);
  if (!uidMappings?.length !== !gidMappings?.length) bad(at, `${what} needs both uidMappings and gidMappings`);
  if (process.getuid?.() !== 0) bad(at, `${what} needs root: nsbox writes a user namespace's maps for it (runc refuses it for rootless containers too)`);
  return {
    mount,
    at,
    uidMappings: uidMappings?.length ? uidMappings : undefined,
    gidMappings: gidMappings?.length ? gidMappings : undefined,
    recursive: word.startsWith("ridmap"),
  };
}

/**
 * crun's option: idmap=uids=FS-HOST-SIZE#...;gids=... (crun's
 * parse_idmapped_mount_option): triplets split by "#", each "@"-prefixed one
 * relative (its HOST is a container id, taken through linux.uidMappings/gidMappings).
 */
function crunIdmapOption(word: string, what: string, maps: ContainerMaps): { uidMappings?: IdMapping[]; gidMappings?: IdMapping[] } {
  const out: { uidMappings?: IdMapping[]; gidMappings?: IdMapping[] } = {};
  const value = word.slice(word.indexOf("=") + 1);
  for (const part of value.split(";").filter(Boolean)) {
    const uids = part.startsWith("uids=");
    if (!uids && !part.startsWith("gids=")) bad(what, `${JSON.stringify(part)} in ${JSON.stringify(word)} must start with uids= or gids=`);
    const own = uids ? maps.uid : maps.gid;
    const list = part
      .slice(5)
      .split("#")
      .filter(Boolean)
      .map((t) => {
        const relative = t.startsWith("@");
        const m = /^(\d+)-(\d+)-(\d+)$/.exec(relative ? t.slice(1) : t);
        if (!m) return bad(what, `${JSON.stringify(t)} in ${JSON.stringify(word)} must be FROM-TO-COUNT (e.g. 0-1000-1)`);
        const [containerID, id, size] = [Number(m[1]), Number(m[2]), Number(m[3])];
        if (!relative) return { containerID, hostID: id, size };
        const base = own?.find((x) => id >= x.containerID && id < x.containerID + x.size);
        if (!base)
          return bad(what, `${JSON.stringify(t)}: the container's ${uids ? "uid" : "gid"} ${id} has no mapping (linux.${uids ? "uid" : "gid"}Mappings)`);
        return { containerID, hostID: id - base.containerID + base.hostID, size };
      });
    if (uids) out.uidMappings = list;
    else out.gidMappings = list;
  }
  return out;
}

function parseDevices(v: unknown): Device[] {
  const out = defaultDevices();
  if (v === undefined || v === null) return out;
  if (!Array.isArray(v)) return bad("linux.devices", "must be a list");
  for (const [i, d] of v.entries()) {
    const o = obj(d, `linux.devices[${i}]`);
    const path = str(o.path, `linux.devices[${i}].path`);
    const t = str(o.type, `linux.devices[${i}].type`);
    if (t !== "c" && t !== "b" && t !== "u" && t !== "p")
      bad(`linux.devices[${i}].type`, `${JSON.stringify(t)} must be c or u (character), b (block) or p (FIFO)`);
    const fifo = t === "p";
    const dev: Device = {
      path,
      type: t === "b" ? "b" : fifo ? "p" : "c",
      // a FIFO has no device number (runc ignores the config's)
      major: fifo ? 0 : int(o.major, `linux.devices[${i}].major`, 0, 4095),
      minor: fifo ? 0 : int(o.minor, `linux.devices[${i}].minor`, 0, 2 ** 20 - 1),
      fileMode: optInt(o.fileMode, `linux.devices[${i}].fileMode`, 0, 0o7777) ?? 0o666,
      uid: optInt(o.uid, `linux.devices[${i}].uid`, 0, 2 ** 32 - 2),
      gid: optInt(o.gid, `linux.devices[${i}].gid`, 0, 2 ** 32 - 2),
    };
    const at = out.findIndex((x) => x.path === path);
    if (at >= 0) out[at] = dev;
    else out.push(dev);
  }
  return out;
}

/** runc's AllowedDevices: mknod of any, the usual nodes, the pty multiplexer and its terminals. */
const ALLOWED_DEVICES: DeviceRule[] = [
  { allow: true, type: "c", major: -1, minor: -1, access: "m" },
  { allow: true, type: "b", major: -1, minor: -1, access: "m" },
  { allow: true, type: "c", major: 1, minor: 3, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 8, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 7, access: "rwm" },
  { allow: true, type: "c", major: 5, minor: 0, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 5, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 9, access: "rwm" },
  { allow: true, type: "c", major: 136, minor: -1, access: "rwm" },
  { allow: true, type: "c", major: 5, minor: 2, access: "rwm" },
];

function parseSysctl(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  const o = obj(v, "linux.sysctl");
  for (const [k, val] of Object.entries(o)) {
    if (!/^[A-Za-z0-9_.-]+$/.test(k) || k.includes("..")) bad("linux.sysctl", `${JSON.stringify(k)} is not a sysctl name`);
    str(val, `linux.sysctl.${k}`);
  }
  return o as Record<string, string>;
}

/** linux.timeOffsets: monotonic and boottime offsets of a new time namespace. */
function parseTimeOffsets(v: unknown, namespaces: Namespace[]) {
  if (v === undefined || v === null) return undefined;
  const o = obj(v, "linux.timeOffsets");
  if (!Object.keys(o).length) return undefined;
  if (!namespaces.some((n) => n.type === "time" && !n.path)) bad("linux.timeOffsets", "needs a new time namespace (linux.namespaces)");
  const out: Record<string, { secs: number; nanosecs: number }> = {};
  for (const [clock, x] of Object.entries(o)) {
    if (clock !== "monotonic" && clock !== "boottime") bad(`linux.timeOffsets.${clock}`, "is not a clock nsbox can offset (monotonic, boottime)");
    const t = obj(x, `linux.timeOffsets.${clock}`);
    out[clock] = {
      secs: int(t.secs ?? 0, `linux.timeOffsets.${clock}.secs`),
      nanosecs: int(t.nanosecs ?? 0, `linux.timeOffsets.${clock}.nanosecs`, 0, 999999999),
    };
  }
  return out;
}

function parsePersonality(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const o = obj(v, "linux.personality");
  if (strs(o.flags, "linux.personality.flags").length) bad("linux.personality.flags", "are not supported by nsbox");
  if (o.domain === "LINUX") return 0;
  if (o.domain === "LINUX32") return 8;
  return bad("linux.personality.domain", `${JSON.stringify(o.domain)} must be LINUX or LINUX32`);
}

export function parseResources(v: unknown): { resources?: Resources; unified?: Record<string, string>; v1Files?: V1File[] } {
  if (v === undefined || v === null) return {};
  const r = obj(v, "linux.resources");
  const at = "linux.resources.";
  // This host's cgroups have no hugetlb controller for containers (runc and crun
  // fail on it here): nsbox runs the container without these limits and says so.
  if (Array.isArray(r.hugepageLimits) && r.hugepageLimits.length)
    log.warn(`config.json: ${at}hugepageLimits is not applied: nsbox does not manage the hugetlb cgroup controller`);
  refuse(r, "network", at);
  refuse(r, "rdma", at);
  const out: Resources = {};
  const v1Files: V1File[] = [];
  if (r.devices !== undefined && r.devices !== null) {
    if (!Array.isArray(r.devices)) bad(`${at}devices`, "must be a list");
    out.devices = (r.devices as unknown[]).map((d, i): DeviceRule => {
      const o = obj(d, `${at}devices[${i}]`);
      const type = o.type ?? "a";
      if (type !== "a" && type !== "c" && type !== "b") bad(`${at}devices[${i}].type`, `${JSON.stringify(type)} must be a, c or b`);
      const access = o.access === undefined ? undefined : str(o.access, `${at}devices[${i}].access`);
      if (access !== undefined && !/^[rwm]*$/.test(access)) bad(`${at}devices[${i}].access`, `${JSON.stringify(access)} must be letters of rwm`);
      return {
        allow: o.allow === true,
        type: type as DeviceRule["type"],
        major: optInt(o.major, `${at}devices[${i}].major`, -1),
        minor: optInt(o.minor, `${at}devices[${i}].minor`, -1),
        access,
      };
    });
  }
  if (r.memory !== undefined && r.memory !== null) {
    const m = obj(r.memory, `${at}memory`);
    // Kernel memory accounting is deprecated (and gone from cgroup v2): runc ignores
    // kernel; crun writes kernelTCP on v1, where the kernel still has the file.
    if (m.kernel !== undefined && m.kernel !== null) log.debug(`config.json: ${at}memory.kernel is deprecated: ignored, as runc does`);
    const tcp = optInt(m.kernelTCP, `${at}memory.kernelTCP`, -1);
    if (tcp !== undefined)
      v1Files.push({ controller: "memory", file: "memory.kmem.tcp.limit_in_bytes", value: String(tcp), what: `${at}memory.kernelTCP`, optional: true });
    for (const k of ["useHierarchy", "checkBeforeUpdate"]) refuse(m, k, `${at}memory.`);
    const swappiness = typeof m.swappiness === "bigint" ? undefined : optInt(m.swappiness, `${at}memory.swappiness`, 0, 2 ** 53);
    // runc: a value above 100 (the Go zero value -1 as uint64) means "leave the default"
    if (swappiness !== undefined && swappiness <= 100)
      v1Files.push({ controller: "memory", file: "memory.swappiness", value: String(swappiness), what: `${at}memory.swappiness` });
    if (m.disableOOMKiller === true) v1Files.push({ controller: "memory", file: "memory.oom_control", value: "1", what: `${at}memory.disableOOMKiller` });
    const pos = (k: string) => {
      const n = optInt(m[k], `${at}memory.${k}`, -1);
      return n === undefined || n <= 0 ? undefined : n;
    };
    const swap = optInt(m.swap, `${at}memory.swap`, -1);
    out.memory = { limit: pos("limit"), reservation: pos("reservation"), swap: swap === undefined || swap === 0 ? undefined : swap };
  }
  if (r.cpu !== undefined && r.cpu !== null) {
    const c = obj(r.cpu, `${at}cpu`);
    for (const k of ["realtimeRuntime", "realtimePeriod", "burst", "idle"]) refuse(c, k, `${at}cpu.`);
    const pos = (k: string) => {
      const n = optInt(c[k], `${at}cpu.${k}`, -1);
      return n === undefined || n <= 0 ? undefined : n;
    };
    out.cpu = {
      shares: pos("shares"),
      quota: pos("quota"),
      period: pos("period"),
      cpus: c.cpus ? str(c.cpus, `${at}cpu.cpus`) : undefined,
      mems: c.mems ? str(c.mems, `${at}cpu.mems`) : undefined,
    };
  }
  if (r.pids !== undefined && r.pids !== null) {
    const n = optInt(obj(r.pids, `${at}pids`).limit, `${at}pids.limit`, -1);
    if (n !== undefined && n > 0) out.pids = { limit: n };
  }
  if (r.blockIO !== undefined && r.blockIO !== null) {
    const b = obj(r.blockIO, `${at}blockIO`);
    for (const k of ["weightDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"]) refuse(b, k, `${at}blockIO.`);
    const leaf = optInt(b.leafWeight, `${at}blockIO.leafWeight`, 10, 1000);
    if (leaf !== undefined) v1Files.push({ controller: "blkio", file: "blkio.leaf_weight", value: String(leaf), what: `${at}blockIO.leafWeight` });
    const thr = (k: string) =>
      b[k] === undefined || b[k] === null
        ? undefined
        : (Array.isArray(b[k]) ? (b[k] as unknown[]) : bad(`${at}blockIO.${k}`, "must be a list")).map((d, i) => {
            const o = obj(d, `${at}blockIO.${k}[${i}]`);
            return {
              major: int(o.major, `${at}blockIO.${k}[${i}].major`, 0),
              minor: int(o.minor, `${at}blockIO.${k}[${i}].minor`, 0),
              rate: int(o.rate, `${at}blockIO.${k}[${i}].rate`, 0),
            };
          });
    out.blockIO = {
      weight: optInt(b.weight, `${at}blockIO.weight`, 10, 1000),
      throttleReadBpsDevice: thr("throttleReadBpsDevice"),
      throttleWriteBpsDevice: thr("throttleWriteBpsDevice"),
    };
  }
  let unified: Record<string, string> | undefined;
  if (r.unified !== undefined && r.unified !== null) {
    unified = obj(r.unified, `${at}unified`) as Record<string, string>;
    for (const [k, val] of Object.entries(unified)) {
      if (!/^[a-z_]+\.[a-z_.]+$/.test(k)) bad(`${at}unified`, `${JSON.stringify(k)} is not a cgroup v2 file name`);
      str(val, `${at}unified.${k}`);
    }
    if (!Object.keys(unified).length) unified = undefined;
  }
  return { resources: out, unified, v1Files: v1Files.length ? v1Files : undefined };
}

function parseSeccompShape(v: unknown): NonNullable<ContainerSpec["linux"]["seccomp"]> {
  const s = obj(v, "linux.seccomp");
  if (typeof s.defaultAction !== "string") bad("linux.seccomp.defaultAction", "is missing");
  if (s.listenerPath) bad("linux.seccomp.listenerPath", "(a seccomp agent) is not supported by nsbox");
  for (const f of strs(s.flags, "linux.seccomp.flags")) bad("linux.seccomp.flags", `${JSON.stringify(f)} is not supported by nsbox`);
  return s as unknown as NonNullable<ContainerSpec["linux"]["seccomp"]>;
}

function parseHooks(v: unknown): Hooks {
  const h = obj(v, "hooks");
  const out: Hooks = {};
  for (const k of Object.keys(h)) if (!(HOOK_KINDS as readonly string[]).includes(k)) bad(`hooks.${k}`, "is not a hook kind");
  for (const kind of HOOK_KINDS) {
    if (h[kind] === undefined || h[kind] === null) continue;
    if (!Array.isArray(h[kind])) bad(`hooks.${kind}`, "must be a list");
    out[kind] = (h[kind] as unknown[]).map((x, i) => {
      const o = obj(x, `hooks.${kind}[${i}]`);
      const path = str(o.path, `hooks.${kind}[${i}].path`);
      if (!isAbsolute(path)) bad(`hooks.${kind}[${i}].path`, `${JSON.stringify(path)} must be an absolute path`);
      return {
        path,
        args: o.args === undefined ? undefined : strs(o.args, `hooks.${kind}[${i}].args`),
        env: o.env === undefined ? undefined : strs(o.env, `hooks.${kind}[${i}].env`),
        timeout: optInt(o.timeout, `hooks.${kind}[${i}].timeout`, 1),
      };
    });
  }
  return out;
}

function parseAnnotations(v: unknown): Record<string, string> {
  const a = obj(v, "annotations");
  for (const [k, val] of Object.entries(a)) str(val, `annotations.${k}`);
  return a as Record<string, string>;
}
