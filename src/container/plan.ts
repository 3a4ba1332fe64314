/**
 * The child's path, as data: turns a ContainerSpec into the W and C programs that
 * csrc/helper.c runs (see native/program.ts). The order of the C steps is the
 * order in which runc and crun set a container up:
 *
 *   join namespaces (user first) -> unshare new ones -> READY/GO with nsbox (uid
 *   maps, cgroup, network are done by then) -> become root of the user namespace
 *   -> new cgroup namespace (after joining the cgroup, so it is rooted there)
 *   -> private propagation -> overlay root -> mounts, devices, links -> pivot_root
 *   -> read-only root -> hostname -> terminal or new session -> user -> cwd -> exec.
 *
 * The security steps (masked and read-only paths after pivot_root; the bounding
 * set, seccomp, the user, the capability sets and no_new_privs around the user
 * switch) are in identitySteps, which `exec` shares, so that both get the same.
 */
import { DEV_LINKS } from "../config/defaults.ts";
import { MS, mountFlags } from "../config/mountopts.ts";
import type { ContainerSpec, Mount, NamespaceType, Process } from "../config/spec.ts";
import { kernelAtLeast } from "../kernel.ts";
import { filter, some } from "../list.ts";
import { C, EXEC_FD, EXEC_INIT, MK, type Op, W } from "../native/program.ts";
import { capMask, heldCaps, lastCap } from "../security/capabilities.ts";

export const CLONE: Record<NamespaceType, number> = {
  mount: 0x00020000,
  cgroup: 0x02000000,
  uts: 0x04000000,
  ipc: 0x08000000,
  user: 0x10000000,
  pid: 0x20000000,
  network: 0x40000000,
  time: 0x00000080,
};

/** The clone flag of each /proc/PID/ns/NAME (what setns is told to expect when a process joins it). */
export const CLONE_OF_NSFILE: Record<string, number> = {
  user: CLONE.user,
  ipc: CLONE.ipc,
  uts: CLONE.uts,
  net: CLONE.network,
  cgroup: CLONE.cgroup,
  time: CLONE.time,
  mnt: CLONE.mount,
  pid: CLONE.pid,
};

const SIGKILL = 9;
const PR_SET_DUMPABLE = 4;
const PR_SET_NO_NEW_PRIVS = 38;

/** What a detached container's monitor keeps for the clean-up it runs (unmounts, cgroups, links, nft). */
const MONITOR_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_ADMIN",
  "CAP_SYS_RESOURCE",
  "CAP_MKNOD",
  "CAP_AUDIT_WRITE",
  "CAP_SETFCAP",
  "CAP_BPF",
];

export interface ChildPlan {
  spec: ContainerSpec;
  /** the base rootfs (never written) */
  lowerDir: string;
  /** overlay upper/work */
  upperDir: string;
  workDir: string;
  /**
   * The mount point of the merged root. nsbox run mounts the overlay over its own
   * lower dir (the rootfs, the image's top layer, or the idmapped copy): the mount
   * is in the container's private mount namespace, the path is one the container
   * process resolves anyway for lowerdir=, and a directory made for it and removed
   * again cost two ext4 metadata writes per run (bench/trace-notes.md, "Eleventh stop").
   */
  mergedDir: string;
  /** with a user namespace: where the idmapped copy of lowerDir that nsbox sends with GO is attached */
  idmappedLowerDir?: string;
  /** fds (open in nsbox) of namespaces to join, by type */
  joinFds: Partial<Record<NamespaceType, number>>;
  /** stdin/stdout/stderr for the command (-1: nsbox's own) */
  stdio: [number, number, number];
  /** memfd of the shim, when --init or detached */
  shimFd?: number;
  /** detached: W becomes the monitor shim with these arguments */
  monitor?: { argv: string[]; keepFds: number[]; env: string[] };
  winsize?: { rows: number; cols: number };
  /** cgroup v2: an fd of the container's cgroup directory, which C is cloned into (CLONE_INTO_CGROUP) */
  cgroupFd?: number;
  /** the BPF program of spec.linux.seccomp (security/seccomp-policy.ts filterFor) */
  seccompFilter?: Uint8Array;
  /**
   * OCI create: the process outlives nsbox (no parent-death signal) and waits
   * before execve until `start` opens exec.fifo (waitFd: its O_PATH fd);
   * fds 3..3+keepFds-1 are passed to the command.
   */
  oci?: { waitFd: number; keepFds: number };
}

/**
 * C_SETID's "leave the supplementary groups": a rootless namespace that maps the
 * caller alone has setgroups denied (the kernel's condition for its gid_map).
 */
const KEEP_GROUPS = 0xffffffff;
const groupsOf = (spec: ContainerSpec, groups: number[]) => (spec.nsbox.rootless?.ranges === false ? KEEP_GROUPS : groups);

export function buildPrograms(p: ChildPlan): { w: Op[]; c: Op[] } {
  const { spec } = p;
  const w: Op[] = [];
  const c: Op[] = [];
  // The spec's namespaces read once, as CLONE flags: those it has, and those it creates (no path)
  let named = 0;
  let created = 0;
  for (const n of spec.linux.namespaces) {
    named |= CLONE[n.type];
    if (!n.path) created |= CLONE[n.type];
  }
  const creates = (t: NamespaceType) => (created & CLONE[t]) !== 0;
  const userns = (named & CLONE.user) !== 0;

  // W joins the pid namespace (it applies to children only), then clones C into
  // the new pid and user namespaces (a new user namespace must be first: it owns
  // every namespace created after it).
  // Rootless, a pod member joins the pod's user namespace in W: only there may it
  // create (or join) a pid namespace, which the host's user namespace refuses a user.
  const userInW = !!spec.nsbox.rootless && p.joinFds.user !== undefined;
  if (userInW) w.push({ code: W.SETNS, fields: [p.joinFds.user as number, CLONE.user], what: "join the user namespace" });
  if (p.joinFds.pid !== undefined) w.push({ code: W.SETNS, fields: [p.joinFds.pid, CLONE.pid], what: "join the pid namespace" });
  if (p.monitor) w.push({ code: W.SETSID, fields: [], what: "start a new session" });
  const cloneFlags = created & (CLONE.pid | CLONE.user);
  w.push({ code: W.CLONE, fields: [cloneFlags, p.cgroupFd ?? -1], what: "create the container process" });
  if (p.monitor && p.shimFd !== undefined) {
    // The monitor, and the nsbox it runs for the clean-up, never load modules,
    // do raw I/O, reboot, set the clock or read the kernel log: they lose those
    // for good (root's execve gives back only what the bounding set keeps).
    // (rootless, the monitor holds no capability: nothing to drop, and no right to)
    if (!spec.nsbox.rootless)
      w.push({ code: W.CAPBSET, fields: [...capMask(MONITOR_CAPS.filter((c) => heldCaps().has(c))), lastCap()], what: "drop the monitor's capabilities" });
    w.push({ code: W.EXEC, fields: [p.shimFd, p.monitor.keepFds, p.monitor.argv, p.monitor.env], what: "start the monitor" });
  } else w.push({ code: W.EXIT, fields: [], what: "hand the container to nsbox" });

  // C is born non-dumpable (W made itself so before the clone): nothing in the
  // container may open its /proc/PID/exe (nsbox's own binary) or its memory
  // before execve (CVE-2019-5736). In a new user namespace it must be dumpable
  // while it mounts: a non-dumpable process's /proc/self belongs to the host's
  // root, which its own root cannot use (binds go through /proc/self/fd), as
  // runc's nsexec also finds. Its pid namespace is its own then, so no other
  // process of the container exists yet to look.
  const hide: Op = { code: C.PRCTL, fields: [PR_SET_DUMPABLE, 0], what: "hide nsbox from the container" };
  if (creates("user") || userInW) c.push({ code: C.PRCTL, fields: [PR_SET_DUMPABLE, 1], what: "make the mounts' /proc/self usable" });
  // Joining: the user namespace first (it decides what we may join next).
  const joinOrder: NamespaceType[] = ["user", "ipc", "uts", "network", "cgroup", "time", "mount"];
  for (const t of joinOrder) {
    const fd = p.joinFds[t];
    if (fd !== undefined && !(userInW && t === "user")) c.push({ code: C.SETNS, fields: [fd, CLONE[t]], what: `join the ${t} namespace` });
  }
  const unshare = created & (CLONE.mount | CLONE.uts | CLONE.ipc | CLONE.network);
  if (unshare) c.push({ code: C.UNSHARE, fields: [unshare], what: "create namespaces" });
  if (creates("network")) c.push({ code: C.IFUP, fields: ["lo"], what: "bring up the loopback interface" });
  // An OCI mount namespace joined by path gets the rootfs, the mounts and pivot_root
  // too, set up in that namespace as runc and crun do (which changes it for every
  // process in it: pivot_root moves the root of those that had the old one).
  const mountNs = creates("mount") || (!!p.oci && (named & CLONE.mount) !== 0);
  const cgroupMounts = filter(spec.mounts, isCgroupMount);
  let rootfsLateRo: string[] = [];
  if (userns || !mountNs) {
    // With a user namespace, the id maps (and the idmapped rootfs that comes with
    // GO) are needed before anything else.
    c.push({ code: C.SYNC, fields: [1, 1], what: "wait for nsbox" });
    if (userns) c.push({ code: C.SETID, fields: [0, 0, groupsOf(spec, [0])], what: "become root in the user namespace" });
    if (mountNs) rootfsLateRo = buildRootfs(p, c, userns);
    // An OCI container without a mount namespace: nothing is mounted (it would
    // be the host's namespace); its root is entered with chroot, as runc and
    // crun do. (nsbox's own, a pod's pause process, keep the host's root.)
    else if (p.oci) c.push({ code: C.CHROOT, fields: [p.mergedDir], what: `chroot into ${p.mergedDir}` });
  } else {
    // READY now, GO later: nsbox joins the cgroup and plugs in the network while
    // the rootfs is being mounted (a v1 cgroup attach alone can take milliseconds).
    c.push({ code: C.SYNC, fields: [1, 0], what: "tell nsbox the namespaces exist" });
    rootfsLateRo = buildRootfs(p, c, userns);
    c.push({ code: C.SYNC, fields: [0, 1], what: "wait for nsbox" });
  }
  if (!p.oci) c.push({ code: C.PDEATHSIG, fields: [SIGKILL], what: "tie the container to nsbox" });
  // The cgroup namespace comes after the cgroup join, so that its root is the container's cgroup.
  if (creates("cgroup")) c.push({ code: C.UNSHARE, fields: [CLONE.cgroup], what: "create the cgroup namespace" });
  // A time namespace applies from the execve on (time_for_children); its
  // offsets must be written before any process is in it.
  if (creates("time")) {
    c.push({ code: C.UNSHARE, fields: [CLONE.time], what: "create the time namespace" });
    const o = spec.linux.timeOffsets;
    const text = o
      ? Object.entries(o)
          .map(([clock, v]) => `${clock} ${v.secs} ${v.nanosecs}\n`)
          .join("")
      : "";
    if (text) c.push({ code: C.WRITE, fields: ["/proc/self/timens_offsets", text], what: "set the time namespace's clock offsets" });
  }
  if (mountNs) {
    if (cgroupMounts.length) c.push({ code: C.ROOT, fields: ["/"], what: "open the root" });
    const late = pushMounts(spec, cgroupMounts, c, userns);
    for (const d of [...rootfsLateRo, ...late]) c.push({ code: C.REMOUNT, fields: [d, MS.RDONLY], what: `make ${d} read-only` });
    if (spec.root.readonly) c.push({ code: C.REMOUNT, fields: ["/", MS.RDONLY], what: "make the root read-only" });
    // sysctls (and the domain name) go through the container's own /proc/sys, before readonlyPaths covers it
    if (spec.domainname) c.push({ code: C.WRITE, fields: ["/proc/sys/kernel/domainname", spec.domainname], what: `set the domain name to ${spec.domainname}` });
    for (const [k, v] of Object.entries(spec.linux.sysctl ?? {}))
      c.push({ code: C.WRITE, fields: [`/proc/sys/${k.replaceAll(".", "/")}`, v], what: `set the sysctl ${k}` });
    for (const m of spec.linux.maskedPaths ?? []) c.push({ code: C.MASK, fields: [m], what: `mask ${m}` });
    for (const r of spec.linux.readonlyPaths ?? []) c.push({ code: C.ROPATH, fields: [r], what: `make ${r} read-only` });
  }
  if (creates("user") || userInW) c.push(hide);

  if (creates("uts") && spec.hostname) c.push({ code: C.HOSTNAME, fields: [spec.hostname], what: `set the hostname to ${spec.hostname}` });
  if (spec.linux.personality !== undefined) c.push({ code: C.PERSONALITY, fields: [spec.linux.personality], what: "set the personality" });
  if (spec.process.user.umask !== undefined) c.push({ code: C.UMASK, fields: [spec.process.user.umask], what: "set the umask" });
  if (spec.process.terminal) {
    const ws = p.winsize ?? { rows: 0, cols: 0 };
    c.push({ code: C.TTY, fields: [ws.rows, ws.cols], what: "open a terminal in the container's /dev/pts" });
  } else {
    c.push({ code: C.SETSID, fields: [], what: "start a new session" });
    c.push({ code: C.STDIO, fields: p.stdio, what: "set up stdin, stdout and stderr" });
  }
  identitySteps(c, spec.process, p.seccompFilter, { keepGroups: spec.nsbox.rootless?.ranges === false, tieToParent: !p.oci });
  if (p.oci) c.push({ code: C.WAITSTART, fields: [p.oci.waitFd, p.oci.keepFds], what: "wait for start" });
  const args = spec.process.args;
  const how = spec.nsbox.infra ? EXEC_FD : spec.nsbox.init ? EXEC_INIT : 0;
  c.push({ code: C.EXEC, fields: [how, p.shimFd ?? -1, args[0] ?? "", args, spec.process.env], what: `exec ${JSON.stringify(args[0])}` });
  return { w, c };
}

/**
 * A cgroup filesystem must be mounted inside the container's cgroup namespace,
 * which exists only after nsbox has moved the container into its cgroup: these
 * mounts wait until then (after pivot_root). Binds of cgroup dirs (v1) need not.
 */
const isCgroupMount = (m: Mount) => m.type === "cgroup2" || m.type === "cgroup";

/**
 * Overlay root, the mounts of the spec (but the cgroup ones), /dev, then
 * pivot_root. Returns what to remount read-only after pivot_root (see pushMounts).
 */
function buildRootfs(p: ChildPlan, c: Op[], userns: boolean): string[] {
  const { spec } = p;
  // OCI rootfsPropagation (r)slave: the container's mounts stay slaves of the host's, as runc's default
  const prop = spec.linux.rootfsPropagation ?? "";
  const slave = prop === "slave" || prop === "rslave";
  c.push({
    code: C.MOUNT,
    fields: ["", "/", "", MS.REC | (slave ? MS.SLAVE : MS.PRIVATE), "", MK.NONE, 0],
    what: `make mount propagation ${slave ? "slave" : "private"}`,
  });
  let lower = p.lowerDir;
  if (p.idmappedLowerDir) {
    // Files owned by host root would show up as "nobody" in the user namespace,
    // and overlay could not copy them up: nsbox sends an idmapped copy instead.
    c.push({ code: C.ATTACH, fields: [-1, p.idmappedLowerDir, MK.NONE, 0], what: `attach the idmapped rootfs on ${p.idmappedLowerDir}` });
    lower = p.idmappedLowerDir;
  }
  const image = spec.nsbox.image;
  if (spec.nsbox.overlay && image) {
    // An image's layers by their short links in the store's l/, relative to it:
    // 64 and more layers still fit in the page mount(2) copies (as podman does).
    c.push({ code: C.CHDIR, fields: [image.linkDir], what: `change to the image store's ${image.linkDir}` });
    lower = image.lowers.join(":");
  }
  if (spec.nsbox.overlay) {
    const opts = [
      `lowerdir=${lower}`,
      `upperdir=${p.upperDir}`,
      `workdir=${p.workDir}`,
      ...(overlayVolatile() ? ["volatile"] : []),
      ...(userns ? ["userxattr"] : []),
    ];
    const data = opts.join(",");
    c.push({ code: C.MOUNT, fields: ["overlay", p.mergedDir, "overlay", 0, data, MK.NONE, 0], what: `mount the overlay root on ${p.mergedDir}` });
  } else {
    c.push({
      code: C.MOUNT,
      fields: [lower, p.mergedDir, "", MS.BIND | MS.REC, "", MK.NONE, 0],
      what: `bind the rootfs ${lower}`,
    });
  }
  c.push({ code: C.ROOT, fields: [p.mergedDir], what: `open the root ${p.mergedDir}` });
  const lateRo = pushMounts(
    spec,
    filter(spec.mounts, (m) => !isCgroupMount(m)),
    c,
    userns,
  );
  if (spec.process.cwd !== "/") c.push({ code: C.MKDIR, fields: [spec.process.cwd, 0o755], what: `create the working directory ${spec.process.cwd}` });
  c.push({ code: C.PIVOT, fields: [], what: "pivot_root into the rootfs" });
  // OCI rootfsPropagation shared/unbindable: the container's root itself, once it is the root
  const after: Record<string, number> = { shared: MS.SHARED, rshared: MS.SHARED | MS.REC, unbindable: MS.UNBINDABLE, runbindable: MS.UNBINDABLE | MS.REC };
  if (after[prop]) c.push({ code: C.MOUNT, fields: ["", "/", "", after[prop], "", MK.NONE, 0], what: `make the root ${prop}` });
  return lateRo;
}

/**
 * Overlayfs's "volatile" (Linux 5.10): no sync of the upper filesystem, neither
 * when the container calls fsync/syncfs nor when its overlay is unmounted at its
 * exit, which otherwise flushes the whole host filesystem below nsbox's root
 * (measured on ext4 with 64 MiB of dirty data on it: run 46.9 → 38.6 ms median; no
 * change on a quiet filesystem). It costs nothing here, because an nsbox layer never outlives its container:
 * it is deleted at the container's exit and never mounted again, and after a crash
 * the container is gone and its layer is deleted as an orphan (podman does the same
 * for --rm containers, CRI-O for all of its containers).
 */
export function overlayVolatile(rel?: string): boolean {
  return kernelAtLeast(5, 10, rel) === true;
}

/**
 * Mount steps for these mounts (paths inside the root), with the device nodes
 * and links right after /dev. Returns the read-only filesystems that were mounted
 * writable because later mounts go inside them: remount them after pivot_root.
 */
function pushMounts(spec: ContainerSpec, mounts: Mount[], c: Op[], userns: boolean): string[] {
  const lateRo: string[] = [];
  for (let i = 0; i < mounts.length; i++) {
    const m = mounts[i] as Mount;
    // Propagation words (shared, rprivate...) are a second mount(2) call: with
    // them, the kernel would only change the type and ignore the mount itself
    // (or refuse a new filesystem). tmpcopyup (podman, crun) is nsbox's own
    // step after the mount (see copyUp), never data for the kernel. (Most
    // mounts have neither: their words are taken as they are.)
    const words = m.options ?? [];
    let special = false;
    for (const o of words) if (PROPAGATION.has(o) || o === "tmpcopyup") special = true;
    const propWords = special ? words.filter((o) => PROPAGATION.has(o)) : [];
    let { flags, data } = mountFlags(special ? words.filter((o) => !PROPAGATION.has(o) && o !== "tmpcopyup") : words);
    const prop = propWords.length ? mountFlags(propWords).flags : 0;
    const bind = (flags & MS.BIND) !== 0 || m.type === "bind";
    if (!bind && flags & MS.RDONLY && some(mounts.slice(i + 1), (n) => n.destination.startsWith(`${m.destination}/`))) {
      flags &= ~MS.RDONLY;
      lateRo.push(m.destination);
    }
    // a file for a file: C looks at the source (csrc/child_mounts.c), as mount(2) will see it
    const mk = bind && m.source ? MK.SOURCE : MK.DIR;
    c.push({
      code: C.MOUNT,
      fields: [m.source ?? "", m.destination, bind ? "" : (m.type ?? ""), bind ? flags | MS.BIND : flags, data, mk, 1],
      what: bind ? `bind ${m.source} on ${m.destination}` : `mount ${m.type} on ${m.destination}`,
    });
    if (prop) c.push({ code: C.MOUNT, fields: ["", m.destination, "", prop, "", MK.NONE, 1], what: `make ${m.destination} ${propWords.join(",")}` });
    if (m.destination === "/dev") pushDevices(spec, c, userns);
  }
  return lateRo;
}

const PROPAGATION = new Set(["private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"]);

/** Device nodes (or, in a user namespace where mknod is refused, binds of the host's) and /dev's links. */
function pushDevices(spec: ContainerSpec, c: Op[], userns: boolean) {
  for (const d of spec.linux.devices) {
    // (a FIFO needs no privilege: made in a user namespace too)
    if (userns && d.type !== "p") {
      // the host's node it stands for (a --device HOST:CTR names another path inside)
      const host = d.hostPath ?? d.path;
      c.push({ code: C.MOUNT, fields: [host, d.path, "", MS.BIND, "", MK.FILE, 1], what: `bind the host's ${host} on ${d.path}` });
    } else {
      const mode = (d.type === "b" ? 0o060000 : d.type === "p" ? 0o010000 : 0o020000) | d.fileMode;
      c.push({ code: C.MKNOD, fields: [d.path, mode, d.major, d.minor, d.uid ?? 0, d.gid ?? 0], what: `create the device ${d.path}` });
    }
  }
  for (const [target, link] of DEV_LINKS) c.push({ code: C.SYMLINK, fields: [target, link], what: `link ${link} to ${target}` });
}

/**
 * The user, capabilities, no_new_privs and seccomp, in runc's order (see
 * csrc/child_security.c), then the working directory: the last steps before
 * execve, the same for `run` and `exec`.
 */
export function identitySteps(
  c: Op[],
  proc: Process,
  filter: Uint8Array | undefined,
  { keepGroups = false, tieToParent = true }: { keepGroups?: boolean; tieToParent?: boolean } = {},
): void {
  const caps = proc.capabilities;
  const last = lastCap();
  const nnp = proc.noNewPrivileges === true;
  if (caps) c.push({ code: C.CAPBSET, fields: [...capMask(caps.bounding), last], what: "drop capabilities from the bounding set" });
  // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before the sets shrink.
  if (filter && !nnp) c.push({ code: C.SECCOMP, fields: [0, filter], what: "load the seccomp filter" });
  const u = proc.user;
  const groups = keepGroups ? KEEP_GROUPS : (u.additionalGids ?? []);
  c.push({ code: C.SETID, fields: [u.uid, u.gid, groups], what: `switch to user ${u.name ?? `${u.uid}:${u.gid}`}` });
  if (caps)
    c.push({
      code: C.CAPSET,
      fields: [...capMask(caps.effective), ...capMask(caps.permitted), ...capMask(caps.inheritable), ...capMask(caps.ambient), last],
      what: "set the capabilities",
    });
  // A change of user clears PR_SET_PDEATHSIG (the kernel's commit_creds): set it
  // again, after it, so that the process dies with its parent (the monitor, or
  // nsbox in the foreground) whatever user it runs as. Only an exec of a set-id
  // or file-capability program clears it after this (see reconcile's killOrphan).
  // (Not for OCI create: there the process outlives nsbox, as runc's does.)
  if (tieToParent) c.push({ code: C.PDEATHSIG, fields: [SIGKILL], what: "tie the process to its parent" });
  c.push({ code: C.CHDIR, fields: [proc.cwd], what: `change to the working directory ${proc.cwd}` });
  if (nnp) c.push({ code: C.PRCTL, fields: [PR_SET_NO_NEW_PRIVS, 1], what: "set no_new_privs" });
  // With no_new_privs, as late as possible: the filter then sees only the command's own calls.
  if (filter && nnp) c.push({ code: C.SECCOMP, fields: [0, filter], what: "load the seccomp filter" });
}
