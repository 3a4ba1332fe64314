/**
 * OCI create: the container's process is made, set up (namespaces, cgroup,
 * mounts, pivot_root, identity, seccomp) and left waiting before execve, as
 * runc's init is, until `start` opens exec.fifo (csrc C_WAITSTART). nsbox is no
 * monitor here: once W exits, the process belongs to the caller's subreaper
 * (conmon, containerd's shim) or to init, and outlives nsbox.
 *
 * Order, as runc: state dir -> cgroup -> process -> READY: id maps, cgroup
 * join, rlimits, oom_score_adj, prestart/createRuntime hooks -> GO -> READY
 * after the mounts: createContainer hooks in its namespaces -> GO -> pivot_root
 * ... -> CREATED: terminal to --console-socket, state.json, --pid-file.
 * A failure leaves nothing behind (process, cgroup, state dir).
 */

import { CgroupError, type ContainerCgroup, cgroupMountsFor, createCgroup, detectCgroups, parseCgroupParent } from "../cgroup/index.ts";
import { MS } from "../config/mountopts.ts";
import type { ContainerSpec } from "../config/spec.ts";
import { handshake, openJoinFds } from "../container/create.ts";
import { buildPrograms, type ChildPlan } from "../container/plan.ts";
import { sysMessage } from "../errors.ts";
import { log } from "../log.ts";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  writeFileSync,
} from "../native/fs.ts";
import { loadHelper } from "../native/helper.ts";
import { strerror } from "../native/libc.ts";
import { getRlimit, mkfifo, sendFdTo, setRlimit } from "../native/ocisys.ts";
import { C, MK, type Op } from "../native/program.ts";
import { shimFd } from "../native/shim.ts";
import { becomeSubreaper, closeFd, readChildPid, spawnProcess, waitPid } from "../native/spawn.ts";
import { basename, dirname, join } from "../posixpath.ts";
import { filterFor, nativeArch } from "../security/seccomp-policy.ts";
import { procId } from "../state/proc.ts";
import { mark } from "../trace.ts";
import { type Bundle, ConfigError, loadBundle, RLIMITS, type V1File } from "./config.ts";
import { hookSyncPoint, runHooks } from "./hooks.ts";
import { attachIdmapped } from "./idmap.ts";
import { checkId, claimDir, ctrDir, fifoPath, type OciRecord, ociRoot, removeDir, removeFreezer, stateJson, writeRecord } from "./state.ts";

const O_PATH = 0o10000000;

export interface CreateOptions {
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  preserveFds: number;
  /** a session keyring of its own (runc's default; --no-new-keyring: the caller's) */
  newKeyring?: boolean;
  /** --no-pivot: MS_MOVE the root onto / and chroot, as runc (for a rootfs that pivot_root refuses, on the initramfs) */
  noPivot?: boolean;
  /** run in the foreground: nsbox stays the process's parent (subreaper) to wait for it */
  foreground?: boolean;
}

export async function ociCreate(o: CreateOptions): Promise<{ record: OciRecord; master?: number; consoleSize?: boolean }> {
  const id = checkId(o.id);
  const bundle = loadBundle(o.bundle);
  const { spec } = bundle;
  // (run in the foreground relays the terminal itself)
  if (spec.process.terminal && !o.consoleSocket && !o.foreground)
    throw new ConfigError("process.terminal is true but no --console-socket was given: the terminal would have nowhere to go");
  if (!spec.process.terminal && o.consoleSocket) throw new ConfigError("--console-socket was given but process.terminal is false in config.json");
  if (!claimDir(id)) throw new ConfigError(`container ${JSON.stringify(id)} already exists: choose another id, or delete it (delete --force ${id})`);
  const record: OciRecord = {
    ociVersion: spec.ociVersion,
    id,
    pid: 0,
    start: "",
    bundle: bundle.dir,
    rootfs: spec.root.path,
    annotations: bundle.annotations,
    created: new Date().toISOString(),
    hooks: bundle.hooks,
  };
  let cg: ContainerCgroup | undefined;
  let pid = 0;
  const fds: number[] = [];
  try {
    writeRecord(record);
    writeFileSync(join(ctrDir(id), "lock"), "");
    mkfifo(fifoPath(id), 0o622);
    // writable by whatever user the process becomes (mkfifo's mode went through our umask)
    chmodSync(fifoPath(id), 0o622);
    mark("state dir");
    cg = makeCgroup(spec, id, bundle);
    mark("cgroup");
    record.cgroup = cg.record;
    const fr = makeFreezer(cg);
    record.freezer = fr?.dir;
    record.freezerCreated = fr?.created;
    writeRecord(record);
    let s2 = spec;
    const hadCgroupMount = spec.mounts.some(isCgroupMount);
    s2 = { ...spec, mounts: spec.mounts.filter((m) => !isCgroupMount(m)) };
    if (hadCgroupMount) s2 = withOwnCgroupMounts(s2, cg);
    const joinFds = openJoinFds(s2, fds);
    const waitFd = openSync(fifoPath(id), O_PATH);
    fds.push(waitFd);
    const extra = listenFds();
    const keepFds = o.preserveFds + extra;
    if (extra) s2 = { ...s2, process: { ...s2.process, env: [...s2.process.env, `LISTEN_FDS=${extra}`, "LISTEN_PID=1"] } };
    loadHelper();
    mark("helper ready");
    const plan: ChildPlan = {
      spec: s2,
      lowerDir: s2.root.path,
      upperDir: "",
      workDir: "",
      mergedDir: s2.root.path,
      joinFds,
      stdio: [-1, -1, -1],
      // the sealed shim: what --init execs, and what C itself runs (CVE-2019-5736, see c_exec)
      shimFd: shimFd(),
      winsize: s2.process.consoleSize ? { rows: s2.process.consoleSize.height, cols: s2.process.consoleSize.width } : undefined,
      seccompFilter: s2.linux.seccomp ? await seccompFilterOf(s2) : undefined,
      oci: { waitFd, keepFds },
      // cgroup v2: the process is born in its cgroup (CLONE_INTO_CGROUP), never moved
      cgroupFd: cg.cloneFd(),
    };
    if (plan.cgroupFd !== undefined) fds.push(plan.cgroupFd);
    const { w, c } = buildPrograms(plan);
    if (bundle.apparmor) beforeIdentity(c, apparmorStep(bundle.apparmor));
    rlimitSteps(c, s2.process.rlimits);
    // As runc: the container does not share the caller's session keyring (keys of the host's root)
    // (anonymous, so that two containers of one id never share one)
    if (o.newKeyring) beforeIdentity(c, { code: C.KEYRING, fields: [""], what: "join a new session keyring" });
    // As runc: with a terminal, /dev/console is that terminal (a bind of the pts now on fd 0).
    const tty = c.findIndex((op) => op.code === C.TTY);
    if (tty >= 0 && s2.mounts.some((m) => m.destination === "/dev"))
      c.splice(
        tty + 1,
        0,
        // pivot_root left no root to resolve in: open the new one
        { code: C.ROOT, fields: ["/"], what: "open the root" },
        { code: C.MOUNT, fields: ["/proc/self/fd/0", "/dev/console", "", MS.BIND, "", MK.FILE, 1], what: "bind the terminal on /dev/console" },
      );
    // (a stop after the mounts, before pivot_root: see hooks.ts; with --no-pivot
    // before the host's /proc and /sys go, as runc runs them before msMoveRoot)
    const hookStop = !!bundle.hooks.createContainer?.length;
    if (hookStop) hookSyncPoint(c);
    if (o.noPivot && c.some((op) => op.code === C.PIVOT)) {
      const info = mountinfoOf(s2);
      if (info === undefined)
        log.warn(`--no-pivot: cannot read the mounts of the mount namespace to join: the host's /proc and /sys stay under the container's root`);
      noPivot(c, hostPseudoMounts(info ?? "", realRoot(s2.root.path)));
    }
    // (the trees are made before the fork: the helper inherits their fds)
    attachIdmapped(s2, bundle.idmapped, c, fds);
    if (o.foreground) becomeSubreaper();
    const sp = spawnProcess(w, c);
    mark("spawned");
    fds.push(sp.syncFd, sp.statusFd);
    pid = readChildPid(sp);
    waitPid(sp.wpid);
    if (pid <= 0) throw new ConfigError(`cannot create the container process: ${pid < 0 ? strerror(-pid).toLowerCase() : "it died at once"}`);
    record.pid = pid;
    record.start = procId(pid)?.start ?? "";
    const master = await handshake(
      sp,
      s2,
      c,
      pid,
      async () => {
        // (the handshake has written the id maps by now)
        cg?.join(pid);
        if (record.freezer) writeFileSync(join(record.freezer, "cgroup.procs"), String(pid));
        setUpProcess(s2, pid);
        // (prestart sees "created" as runc and crun give it, and runtime-tools checks)
        await runHooks(bundle.hooks, "prestart", stateJson(record, "created"));
        await runHooks(bundle.hooks, "createRuntime", stateJson(record, "creating"));
      },
      undefined,
      hookStop ? [() => runHooks(bundle.hooks, "createContainer", stateJson(record, "creating"), { pid })] : [],
    );
    mark("created");
    copyUp(spec, pid);
    // handshake also returns at end-of-file: then the process died instead of waiting
    if (!procId(pid)) throw new ConfigError(`the container process exited during create (${spec.process.args[0]})`);
    if (master !== undefined && o.consoleSocket) {
      try {
        sendFdTo(o.consoleSocket, master);
      } finally {
        closeFd(master);
      }
    }
    writeRecord(record);
    if (o.pidFile) writePidFile(o.pidFile, pid);
    return { record, master: o.consoleSocket ? undefined : master, consoleSize: !!spec.process.consoleSize };
  } catch (e) {
    if (pid > 0) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
      if (o.foreground) waitPid(pid);
    }
    if (cg) await cg.remove().catch(() => undefined);
    removeFreezer(record);
    removeDir(id);
    throw e;
  } finally {
    for (const fd of fds) closeFd(fd);
  }
}

/**
 * tmpcopyup (podman's tmpfs on /tmp, /run, /var/tmp; crun's option): the new
 * tmpfs starts with what the image has there, with its owners. Copied from the host side of
 * the rootfs into the waiting process's tree (/proc/PID/root), its command not
 * yet run. A path through a symlink is skipped with a warning: an absolute
 * link would resolve on the host here.
 */
function copyUp(spec: ContainerSpec, pid: number) {
  for (const m of spec.mounts) {
    if (!m.options?.includes("tmpcopyup")) continue;
    const parts = m.destination.split("/").filter(Boolean);
    let src = spec.root.path;
    let linked = false;
    for (const part of parts) {
      src = join(src, part);
      try {
        if (lstatSync(src).isSymbolicLink()) linked = true;
      } catch {
        linked = true; // nothing to copy
        break;
      }
    }
    if (linked) {
      if (existsSync(src)) log.warn(`tmpcopyup: ${m.destination} goes through a symbolic link in the rootfs: the tmpfs starts empty`);
      continue;
    }
    const dst = `/proc/${pid}/root${m.destination}`;
    try {
      const st = statSync(src);
      chmodSync(dst, st.mode & 0o7777);
      chownSync(dst, st.uid, st.gid);
      // node:fs's copy, loaded for a tmpcopyup mount alone
      const { cpSync, lchownSync } = require("node:fs") as typeof import("node:fs");
      for (const name of readdirSync(src)) {
        cpSync(join(src, name), join(dst, name), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, force: true });
        copyOwners(join(src, name), join(dst, name), lchownSync);
      }
    } catch (e) {
      throw new ConfigError(`cannot copy ${m.destination} of the image into its tmpfs (tmpcopyup): ${sysMessage(e)}`);
    }
  }
}

/** cpSync keeps modes, times and links, not owners (the image's /var/tmp/x of its user): chown each copy as its source. */
function copyOwners(src: string, dst: string, lchownSync: (path: string, uid: number, gid: number) => void) {
  const st = lstatSync(src);
  lchownSync(dst, st.uid, st.gid);
  // (a chown clears set-id bits: give them back)
  if (!st.isSymbolicLink() && st.mode & 0o6000) chmodSync(dst, st.mode & 0o7777);
  if (st.isDirectory()) for (const name of readdirSync(src)) copyOwners(join(src, name), join(dst, name), lchownSync);
}

const isCgroupMount = (m: { type?: string }) => m.type === "cgroup" || m.type === "cgroup2";

/**
 * The config's cgroup mount, as runc makes it: on v1 a tmpfs with the
 * container's own cgroup of each hierarchy bound in (with or without a cgroup
 * namespace), so /sys/fs/cgroup/memory/memory.limit_in_bytes is its limit; on
 * v2 a cgroup2 mount in its cgroup namespace, or the host's tree without one.
 */
function withOwnCgroupMounts(spec: ContainerSpec, cg: ContainerCgroup): ContainerSpec {
  const privateNs = cg.record.version === 1 || spec.linux.namespaces.some((n) => n.type === "cgroup");
  const extra = cgroupMountsFor(cg.record, privateNs);
  const at = spec.mounts.findIndex((m) => m.destination === "/sys");
  const mounts = at < 0 ? [...spec.mounts, ...extra] : [...spec.mounts.slice(0, at + 1), ...extra, ...spec.mounts.slice(at + 1)];
  return { ...spec, mounts };
}

/**
 * linux.cgroupsPath: a cgroupfs path, or systemd's "slice:prefix:name" which,
 * with no systemd to ask, becomes slice/prefix-name.scope as runc lays it out.
 * The container's cgroup is exactly that path (relative ones from the root of
 * the hierarchy, as runc's cgroupfs driver).
 */
export function cgroupPath(path: string | undefined): string | undefined {
  if (!path) return undefined;
  const parts = path.split(":");
  if (parts.length === 3 && !path.startsWith("/")) {
    const [slice, prefix, name] = parts as [string, string, string];
    const sliceDir = slice ? expandSlice(slice) : "/system.slice";
    return `${sliceDir}/${prefix ? `${prefix}-` : ""}${name}.scope`;
  }
  return path.startsWith("/") ? path : `/${path}`;
}

/** systemd's slice nesting: "a-b.slice" lives in a.slice/a-b.slice. */
function expandSlice(slice: string): string {
  if (slice === "-.slice") return "";
  const name = slice.replace(/\.slice$/, "");
  const parts = name.split("-");
  let path = "";
  for (let i = 1; i <= parts.length; i++) path += `/${parts.slice(0, i).join("-")}.slice`;
  return path;
}

/**
 * Without a cgroupsPath the container's cgroup is nsbox-oci-TAG-ID beside
 * nsbox's other containers (TAG: a digest of --root): ids are the client's,
 * and two runtime roots (or test files) may both use "web".
 */
export function cgroupName(id: string): string {
  const tag = new Bun.CryptoHasher("sha256").update(ociRoot()).digest("hex").slice(0, 8);
  return `nsbox-oci-${tag}-${id}`;
}

/** Where the container's cgroup goes: { parent (undefined: nsbox's default), leaf }. */
function placement(spec: ContainerSpec, id: string): { parent?: string; leaf: string } {
  const full = cgroupPath(spec.linux.cgroupsPath);
  if (!full) return { leaf: cgroupName(id) };
  let clean: string;
  try {
    clean = parseCgroupParent(full);
  } catch (e) {
    throw new ConfigError(
      `config.json: linux.cgroupsPath ${JSON.stringify(spec.linux.cgroupsPath)}: ${(e as Error).message.replace(/^--cgroup-parent "[^"]*" /, "")}`,
    );
  }
  if (clean === "/") throw new ConfigError("config.json: linux.cgroupsPath must name a cgroup below the root");
  return { parent: dirname(clean), leaf: basename(clean) };
}

function makeCgroup(spec: ContainerSpec, id: string, bundle: Bundle): ContainerCgroup {
  const { parent, leaf } = placement(spec, id);
  let cg: ContainerCgroup;
  try {
    cg = createCgroup(id, spec.linux.resources, parent, leaf);
  } catch (e) {
    if (e instanceof CgroupError) throw new ConfigError(e.message);
    if ((e as NodeJS.ErrnoException).code === "EEXIST")
      throw new ConfigError(`the cgroup of container ${id} (${leaf}) already exists: delete the container that uses it, or choose another linux.cgroupsPath`);
    throw new ConfigError(`cannot create the cgroup of container ${id}: ${sysMessage(e)}`);
  }
  if (bundle.unified) {
    const dir = cg.record.version === 2 ? cg.record.paths.unified : undefined;
    if (!dir) {
      void cg.remove();
      throw new ConfigError("config.json: linux.resources.unified needs cgroup v2, and this host's cgroups are v1");
    }
    for (const [k, v] of Object.entries(bundle.unified)) {
      try {
        writeFileSync(join(dir, k), v);
      } catch (e) {
        void cg.remove();
        throw new ConfigError(`config.json: linux.resources.unified ${k}: ${(e as Error).message}`);
      }
    }
  }
  for (const f of bundle.v1Files ?? []) writeV1File(cg, f);
  return cg;
}

/** A v1 file runc writes and nsbox's cgroup code does not; absent (v2, no such controller or file): a warning, as runc ignores them on v2. */
function writeV1File(cg: ContainerCgroup, f: V1File) {
  const dir = cg.record.version === 1 ? (cg.record.paths as Record<string, string | undefined>)[f.controller] : undefined;
  if (!dir || !existsSync(join(dir, f.file))) {
    log.warn(`config.json: ${f.what} is not applied: this host's cgroups have no ${f.file}`);
    return;
  }
  try {
    writeFileSync(join(dir, f.file), f.value);
  } catch (e) {
    if (f.optional) return log.warn(`config.json: ${f.what} is not applied: ${f.file}: ${sysMessage(e)}`);
    void cg.remove();
    throw new ConfigError(`config.json: ${f.what}: cannot write ${f.value} to ${f.file}: ${sysMessage(e)}`);
  }
}

/**
 * On cgroup v1 nsbox's cgroups do not include the freezer; pause and resume
 * need one, placed as the memory one is (same parent path and name).
 */
function makeFreezer(cg: ContainerCgroup): { dir: string; created: string[] } | undefined {
  if (cg.record.version !== 1 || cg.record.paths.freezer) return undefined;
  const host = detectCgroups();
  const mount = host.v1Mounts.get("freezer");
  const ref = cg.record.paths.memory ?? cg.record.paths.pids;
  const refMount = cg.record.paths.memory ? host.v1Mounts.get("memory") : host.v1Mounts.get("pids");
  if (!mount || !ref || !refMount) return undefined;
  const dir = join(mount, ref.slice(refMount.length));
  // the levels made here go with the container (deepest last); existing ones stay
  const levels: string[] = [];
  for (let d = dir; d.startsWith(`${mount}/`) && !existsSync(d); d = dirname(d)) levels.unshift(d);
  mkdirSync(dir, { recursive: true });
  return { dir, created: levels };
}

/**
 * Limits on memory would stop the process before it runs its command: it still
 * shares nsbox's address space (gigabytes, reserved by Bun) until execve. The
 * helper sets these as its last step before execve (C_RLIMIT); from outside,
 * only a raise of the hard limit (that needs privileges the process may have
 * dropped by then).
 */
const SET_AT_EXEC = new Set(["RLIMIT_AS", "RLIMIT_DATA"]);

/** The C_RLIMIT steps of the limits set at execve. */
export function rlimitSteps(c: Op[], rlimits: ContainerSpec["process"]["rlimits"]): void {
  const words = (n: number) => (n < 0 ? [0xffffffff, 0xffffffff] : [n % 2 ** 32, Math.floor(n / 2 ** 32)]);
  for (const r of rlimits ?? [])
    if (SET_AT_EXEC.has(r.type))
      beforeIdentity(c, {
        code: C.RLIMIT,
        fields: [RLIMITS.indexOf(r.type), ...words(r.soft), ...words(r.hard)],
        what: `set ${r.type} to ${r.soft}:${r.hard}`,
      });
}

/** From outside, while the process waits for GO: its resource limits and OOM score. */
function setUpProcess(spec: ContainerSpec, pid: number) {
  applyRlimits(pid, spec.process.rlimits);
  if (spec.process.oomScoreAdj !== undefined) writeFileSync(`/proc/${pid}/oom_score_adj`, String(spec.process.oomScoreAdj));
}

/** The limits set from outside (see SET_AT_EXEC for the others). */
export function applyRlimits(pid: number, rlimits: ContainerSpec["process"]["rlimits"]): void {
  for (const r of rlimits ?? []) {
    try {
      if (SET_AT_EXEC.has(r.type)) {
        const now = getRlimit(pid, RLIMITS.indexOf(r.type));
        const above = (a: number, b: number) => b >= 0 && (a < 0 || a > b);
        if (above(r.hard, now.hard)) setRlimit(pid, RLIMITS.indexOf(r.type), now.soft, r.hard);
        continue;
      }
      setRlimit(pid, RLIMITS.indexOf(r.type), r.soft, r.hard);
    } catch (e) {
      throw new ConfigError(`cannot set ${r.type} to ${r.soft}:${r.hard}: ${(e as Error).message}`);
    }
  }
}

/** The BPF program of the config's linux.seccomp (an OCI profile is a docker profile without conditions). */
export async function seccompFilterOf(spec: ContainerSpec): Promise<Uint8Array> {
  const { resolveProfile, SeccompError } = await import("../security/seccomp/index.ts");
  try {
    const { unknown: _u, ...profile } = resolveProfile(spec.linux.seccomp as never, { caps: spec.process.capabilities?.bounding ?? [], arch: nativeArch() });
    return await filterFor(profile);
  } catch (e) {
    if (e instanceof SeccompError) throw new ConfigError(`config.json: linux.seccomp: ${e.message}`);
    throw e;
  }
}

/** The AppArmor profile the command is exec'd into (as runc: written before the user and capabilities change). */
export function apparmorStep(profile: string): Op {
  return { code: C.WRITE, fields: ["/proc/self/attr/apparmor/exec", `exec ${profile}`], what: `apply the AppArmor profile ${profile}` };
}

/** Inserts op right after the terminal/stdio steps, where identitySteps begins. */
export function beforeIdentity(c: Op[], op: Op): void {
  let at = -1;
  c.forEach((o, i) => {
    if (o.code === C.TTY || o.code === C.STDIO || o.code === C.SETSID) at = i;
  });
  c.splice(at + 1, 0, op);
}

/** systemd socket activation: LISTEN_FDS fds (from 3) pass to the container, after --preserve-fds as runc. */
function listenFds(): number {
  const n = Number(process.env.LISTEN_FDS ?? 0);
  return Number.isInteger(n) && n > 0 && n < 1024 ? n : 0;
}

/** Written whole, then renamed: a client reading it never sees half a number. */
export function writePidFile(path: string, pid: number): void {
  const tmp = join(dirname(path), `.${Date.now()}-${process.pid}.pid`);
  writeFileSync(tmp, String(pid));
  renameSync(tmp, path);
}

/**
 * --no-pivot: the pivot_root step becomes runc's msMoveRoot (csrc c_moveroot),
 * after the old root's full proc and sysfs mounts (hostPseudoMounts) are detached.
 */
export function noPivot(c: Op[], hostMounts: string[] = []): void {
  const at = c.findIndex((op) => op.code === C.PIVOT);
  if (at < 0) return;
  c.splice(at, 1, ...hostMounts.map((p) => ({ code: C.UNMOUNTHOST, fields: [p], what: `detach the host's ${p} left under the root (--no-pivot)` })), {
    code: C.MOVEROOT,
    fields: [],
    what: "move the rootfs onto / and chroot into it (--no-pivot)",
  });
}

/**
 * The mount points runc's msMoveRoot takes away before it moves the root: every
 * full (root "/") proc or sysfs mount of the namespace outside the rootfs, in
 * mountinfo's order (parents first). With one left under a chroot, the kernel
 * would let the container mount procfs or sysfs anew, without its masks.
 */
export function hostPseudoMounts(mountinfo: string, rootfs: string): string[] {
  const out: string[] = [];
  const decode = (f: string) => f.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const f = line.slice(0, sep).split(" ");
    const fstype = line.slice(sep + 3).split(" ")[0];
    const point = decode(f[4] ?? "");
    if (f[3] !== "/" || (fstype !== "proc" && fstype !== "sysfs")) continue;
    if (point === rootfs || point.startsWith(rootfs === "/" ? "/" : `${rootfs}/`)) continue;
    out.push(point);
  }
  return out;
}

/** The rootfs as mountinfo shows it (symbolic links resolved). */
function realRoot(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * The mountinfo of the namespace the container's root will be moved in: a copy
 * of nsbox's for a new one; for one joined as /proc/PID/ns/mnt, PID's. Any other
 * path: undefined (nothing to read it through).
 */
function mountinfoOf(spec: ContainerSpec): string | undefined {
  const ns = spec.linux.namespaces.find((n) => n.type === "mount");
  const m = ns?.path ? /^\/proc\/(\d+|self|thread-self)\/ns\/mnt$/.exec(ns.path) : null;
  const file = !ns?.path ? "/proc/self/mountinfo" : m ? `/proc/${m[1]}/mountinfo` : undefined;
  try {
    return file ? readFileSync(file, "utf8") : undefined;
  } catch {
    return undefined;
  }
}
