/**
 * Creating and starting a container, the part shared by foreground and detached
 * runs (and, later, by the OCI create/start verbs):
 *
 *   state dir (phase "creating", lock held) -> name -> layers -> cgroup
 *   -> spawn (helper) -> READY: uid maps, idmapped rootfs, cgroup join, network
 *   -> GO -> pty / exec -> state "running"
 *
 * If anything fails, the same release used by rm gives everything back.
 */

import {
  CgroupError,
  type CgroupRecord,
  type ContainerCgroup,
  cgroupMountsFor,
  cgroupMovesWarm,
  createCgroup,
  planCgroup,
  sameRecord,
  warmCgroupMoves,
} from "../cgroup/index.ts";
import type { ContainerSpec, IdMapping } from "../config/spec.ts";
import { fail, NsboxError } from "../errors.ts";
import { findIndex, some } from "../list.ts";
import { flock, LOCK_EX, LOCK_UN } from "../native/flock.ts";
import { chownSync, closeSync, mkdirSync, openSync, writeFileSync } from "../native/fs.ts";
import { loadHelper } from "../native/helper.ts";
import { strerror } from "../native/libc.ts";
import { encodePrograms, type Op } from "../native/program.ts";
import { shimFd } from "../native/shim.ts";
import { becomeSubreaper, closeFd, idmappedTree, makePipe, readChildPid, recvMessage, type Spawned, sendGo, spawnEncoded, waitPid } from "../native/spawn.ts";
import { etcMounts, writeEtcFiles } from "../net/etc.ts";
import { bridgeSetup, plannedNetwork } from "../net/request.ts";
import { join } from "../posixpath.ts";
import { writeRootlessIdMaps } from "../rootless/idmap.ts";
import { filterFor } from "../security/seccomp-policy.ts";
import { containerDataDir, roots } from "../state/paths.ts";
import { procId, self } from "../state/proc.ts";
import { type ContainerConfig, type ContainerState, containerDir, createContainerDir, reserveName, updateConfig, writeState } from "../state/store.ts";
import { mark } from "../trace.ts";
import { hostWinsize } from "../tty/relay.ts";
import { endMonitor, markDataDir, removeEverything } from "./lifecycle.ts";
import { buildPrograms, type ChildPlan } from "./plan.ts";
import { releaseResources } from "./release.ts";

export interface StartOptions {
  id: string;
  name?: string;
  /** ROOTFS as the user gave it (for ps) */
  rootfsArg: string;
  detached: boolean;
  autoRemove: boolean;
  /** detached: log size cap in bytes */
  logMaxBytes?: number;
}

export interface Started {
  id: string;
  pid: number;
  cgroup?: ContainerCgroup;
  /** pty master (foreground -t) */
  master?: number;
  config: ContainerConfig;
}

const DEFAULT_LOG_MAX = 10 * 1024 * 1024;

/**
 * The nsbox command line that a monitor (or a foreground run's shim) runs when
 * its container exits (see `nsbox cleanup`); quick: a user waits for it (see releaseBridge).
 */
export function cleanupCommand(id: string, quick = false): string[] {
  const exe = process.execPath;
  const script = Bun.main.startsWith("/$bunfs") ? [] : [Bun.main];
  return [exe, ...script, "--root", roots().data, "--state", roots().state, "cleanup", ...(quick ? ["--quick"] : []), id];
}

export async function startContainer(specIn: ContainerSpec, opts: StartOptions): Promise<Started> {
  let spec = specIn;
  const { id } = opts;
  const dataDir = containerDataDir(id);
  const config: ContainerConfig = {
    id,
    name: opts.name,
    created: new Date().toISOString(),
    rootfs: opts.rootfsArg,
    spec,
    detached: opts.detached,
    autoRemove: opts.autoRemove,
    dataDir,
    pod: spec.nsbox.pod,
  };
  // The cgroup it will get and a network that reserves nothing, recorded from
  // the start: config.json is written once (again only if the real records
  // differ: a bridge, or parents another nsbox changed meanwhile), and a
  // creation cut short is found and released from its record like any other.
  if (spec.nsbox.cgroups) config.cgroup = planCgroup(id, spec.linux.resources, spec.linux.cgroupsPath);
  const plannedNet = plannedNetwork(spec.nsbox.network);
  if (plannedNet) config.network = plannedNet as unknown as Record<string, unknown>;
  const state: ContainerState = { phase: "creating", owner: self() };
  createContainerDir(config, state);
  const lockFd = openSync(join(containerDir(id), "lock"), "r");
  flock(lockFd, LOCK_EX);
  const fds: number[] = [];
  let pid = 0;
  let cg: ContainerCgroup | undefined;
  let cgReady: Promise<ContainerCgroup> | undefined;
  try {
    if (opts.name && !reserveName(opts.name, id))
      fail(`the name "${opts.name}" is already in use by another container: choose another, or remove that one (nsbox rm ${opts.name})`);
    mark("state created");

    const userns = some(spec.linux.namespaces, (n) => n.type === "user" && !n.path);
    // a rootless container's rootfs already belongs to its root (the caller): no idmapped copy
    const idmapRootfs = userns && !spec.nsbox.rootless;
    if (some(spec.linux.namespaces, (n) => n.type === "mount")) {
      mkdirSync(join(dataDir, "upper"), { recursive: true, mode: 0o755 });
      markDataDir(dataDir);
      mkdirSync(join(dataDir, "work"), { mode: 0o700 });
      if (idmapRootfs) mkdirSync(join(dataDir, "lower"), { mode: 0o755 });
      chownForUserns(spec, dataDir);
    }

    // The cgroup exists before the container process runs a single instruction
    // of the command: the process joins it at READY. Its directories are made
    // once the move's warm-up (started first thing, see src/early.ts) has seen its
    // grace period through: until then a mkdir would wait behind it on the
    // kernel's cgroup_mutex, and the network, the /etc files and the programs are
    // prepared meanwhile; they exist before the spawn (C binds them on cgroup v1
    // before GO). The programs mount the container's view of its cgroup from the
    // planned record, which names the same directories.
    const planned = config.cgroup;
    if (spec.nsbox.cgroups && planned) {
      const forCgroup = spec;
      cgReady = cgroupMovesWarm().then(() => {
        cg = makeCgroup(forCgroup, id);
        mark("cgroup created");
        // keeps the move's lock warm until the container's join
        warmCgroupMoves();
        return cg;
      });
      cgReady.catch(() => undefined); // a failure is reported where it is awaited (the join)
      spec = withCgroupMounts(spec, planned);
    } else if (spec.nsbox.cgroups) {
      // no plan (createCgroup will say why it cannot make one): made now, as it is
      cg = makeCgroup(spec, id);
      config.cgroup = cg.record;
      spec = withCgroupMounts(spec, cg.record);
      mark("cgroup created");
      warmCgroupMoves();
    }
    /** The container's cgroup once made, recorded again if it differs from the plan (parents changed meanwhile). */
    const cgroupMade = async (): Promise<ContainerCgroup | undefined> => {
      if (!cgReady) return cg;
      const made = await cgReady;
      if (!sameRecord(made.record, config.cgroup)) {
        if (!planned || !sameRecord({ ...made.record, created: [] }, { ...planned, created: [] }))
          throw new NsboxError("the container's cgroup changed while it was created: run it again");
        config.cgroup = made.record;
        updateConfig(config);
      }
      return made;
    };

    // The network: an address and ports reserved now (a clash fails before the
    // container exists), the veth plugged in once its namespace exists.
    const network = plannedNet ?? (await (await bridgeSetup()).prepareNetwork(id, spec.nsbox.network));
    const recordedNet = JSON.stringify(network) === JSON.stringify(config.network);
    config.network = network as unknown as Record<string, unknown>;
    // Containers that share a network (container:NAME, a pod) share its hosts and resolv.conf.
    const etcDir = network.mode === "container" ? containerDir(network.target as string) : containerDir(id);
    const etc = network.mode === "container" ? etcMounts(etcDir) : writeEtcFiles(etcDir, spec.hostname, network.ip, network.mode === "host");
    const mounts = spec.mounts.slice();
    for (const e of etc) if (!some(spec.mounts, (m) => m.destination === e.destination)) mounts.push(e);
    spec = { ...spec, mounts };
    mark("network and /etc files ready");
    loadHelper();

    if (!recordedNet) updateConfig(config);

    const joinFds = openJoinFds(spec, fds);
    const tty = spec.process.terminal;
    const devnull = openSync("/dev/null", "r");
    fds.push(devnull);
    let stdio: [number, number, number] = [spec.nsbox.interactive ? -1 : devnull, -1, -1];
    let monitor: ChildPlan["monitor"];
    if (opts.detached) {
      // The monitor (W, exec'd into the shim) keeps the container's output in
      // its log and its exit status in the state dir, with no nsbox running.
      const [outR, outW] = makePipe();
      const [errR, errW] = makePipe();
      fds.push(outR, outW, errR, errW);
      stdio = [devnull, outW, errW];
      const dir = containerDir(id);
      monitor = {
        argv: ["nsbox-monitor", join(dir, "exit"), join(dir, "ctr.log"), String(opts.logMaxBytes ?? DEFAULT_LOG_MAX), "--", ...cleanupCommand(id)],
        keepFds: [devnull, devnull, devnull, outR, errR],
        // the cleanup it runs must find the same state (NSBOX_NET_STATE, NSBOX_HOST_STATE...)
        env: Object.entries(process.env)
          .filter(([k]) => k === "PATH" || k.startsWith("NSBOX_"))
          .map(([k, v]) => `${k}=${v}`),
      };
    }
    const plan: ChildPlan = {
      spec,
      lowerDir: spec.root.path,
      upperDir: join(dataDir, "upper"),
      workDir: join(dataDir, "work"),
      // the overlay is mounted over its own lower dir, in the container's mount
      // namespace: no directory of its own to make and remove (see ChildPlan)
      mergedDir: idmapRootfs ? join(dataDir, "lower") : spec.root.path,
      idmappedLowerDir: idmapRootfs ? join(dataDir, "lower") : undefined,
      joinFds,
      stdio,
      winsize: tty ? hostWinsize() : undefined,
      // the sealed shim: what --init execs, and what C itself runs (CVE-2019-5736, see c_exec)
      shimFd: shimFd(),
      monitor,
      seccompFilter: spec.linux.seccomp ? await filterFor(spec.linux.seccomp) : undefined,
    };
    if (config.cgroup?.version === 2) {
      // C is cloned into its cgroup (CLONE_INTO_CGROUP): no move, no grace period
      plan.cgroupFd = (await cgroupMade())?.cloneFd();
      if (plan.cgroupFd !== undefined) fds.push(plan.cgroupFd);
    }
    const { w, c } = buildPrograms(plan);
    // encoded before the wait for the cgroup (v1), which may still be in the making
    const programs = encodePrograms(w, c);
    mark("programs built");
    await cgroupMade();
    if (!opts.detached) becomeSubreaper();
    const s = spawnEncoded(programs);
    fds.push(s.syncFd, s.statusFd);
    if (opts.detached) {
      // The monitor (W) is named in the state at once, before the handshake: if
      // nsbox dies from here on, whoever repairs or removes this record finds the
      // monitor and ends it with the record (pid and start time: see endMonitor).
      // Before this write only an uncatchable SIGKILL can stop nsbox, and then
      // the container ends at GO's end-of-file, its monitor with it (shim.c).
      state.monitor = procId(s.wpid);
      writeState(id, state);
    }
    mark("spawned");
    pid = readChildPid(s);
    mark("child created");
    if (!opts.detached) waitPid(s.wpid); // W exits once C exists; C is now ours (subreaper)
    if (pid <= 0) throw new NsboxError(`cannot create the container process: ${pid < 0 ? strerror(-pid).toLowerCase() : "it died at once"}`);
    // from here a failure must not leave the process behind
    const master = await handshake(
      s,
      spec,
      c,
      pid,
      async () => {
        const userNet = spec.nsbox.rootless?.network;
        if (network.mode !== "bridge" && !userNet) {
          // Nothing to do meanwhile: the move on this thread, file after file, costs
          // less than the round trips of writes on the thread pool (the grace period
          // it may wait for was started by warmCgroupMoves).
          (await cgroupMade())?.join(pid);
          return;
        }
        // the cgroup move may wait for an RCU grace period: plug the network in meanwhile
        const joining = cgroupMade().then((made) => made?.joinAsync(pid));
        try {
          if (network.mode === "bridge") (await bridgeSetup()).plumbNetwork(id, network, pid);
          // rootless: the user-mode stack (pasta, slirp4netns), recorded for release and inspect
          if (userNet) {
            const { startUserNet } = await import("../rootless/network.ts");
            config.network = { ...network, userNet: await startUserNet(userNet, pid, join(containerDir(id), "net.log")) };
          }
        } finally {
          await joining;
        }
      },
      idmapRootfs ? spec.root.path : undefined,
    );
    mark("container started");
    if (network.mode === "bridge" || config.network?.userNet) updateConfig(config); // with the namespace's inode (see releaseBridge), or the user-mode stack
    state.phase = "running";
    state.init = procId(pid);
    state.startedAt = new Date().toISOString();
    if (opts.detached) delete state.owner;
    if (!state.init) {
      // it already exited: the exit is read from the exit file or by our waiter
      state.init = { pid, start: "gone" };
    }
    writeState(id, state);
    mark("state running");
    return { id, pid, cgroup: cg, master, config };
  } catch (e) {
    // a cgroup still being made is made (or failed) before it is released
    await cgReady?.catch(() => undefined);
    // (pinned before the kill: the monitor reaps it before it is ended itself)
    const killed = pid > 0 ? procId(pid) : undefined;
    if (pid > 0) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
      if (!opts.detached) waitPid(pid);
    }
    // and its monitor, which would otherwise outlive the record it writes into
    // (a monitor that outlived SIGKILL must not hide the error that says why)
    await endMonitor(state.monitor, id, opts.detached ? killed : undefined).catch(() => undefined);
    await releaseResources(config);
    removeEverything(config);
    throw e;
  } finally {
    for (const fd of fds) closeFd(fd);
    flock(lockFd, LOCK_UN);
    closeSync(lockFd);
  }
}

/**
 * The parent's half of the sync protocol: READY -> set up from outside -> GO,
 * then PTY (with -t) and end-of-file when execve succeeded. Returns the pty master.
 * A program with more sync points (OCI's createContainer hooks) has each later
 * READY answered by the next of later, then GO.
 */
export async function handshake(
  s: Spawned,
  spec: ContainerSpec,
  ops: Op[],
  pid: number,
  setUp: () => void,
  idmapLower?: string,
  later: (() => Promise<void>)[] = [],
): Promise<number | undefined> {
  let master: number | undefined;
  let readies = 0;
  for (;;) {
    const m = recvMessage(s);
    if (m.type === "ready") {
      const first = readies++ === 0;
      try {
        if (first) {
          writeIdMaps(spec, pid);
          await setUp();
        } else await later[readies - 2]?.();
      } catch (e) {
        // If the child failed meanwhile (its namespaces gone with it), its own
        // report is the one that says what went wrong. If it is still waiting
        // for GO, it will never get it: kill it, so that the read below ends.
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // it is gone already
        }
        const next = recvMessage(s);
        if (next.type === "error")
          throw (await import("./childerror.ts")).childError(ops[next.op], next.errno, spec.process.args[0] ?? "", ops.slice(0, next.op));
        throw e instanceof NsboxError ? e : new NsboxError((e as Error).message);
      }
      const tree = idmapLower === undefined || !first ? -1 : idmappedRootfs(idmapLower, pid);
      sendGo(s, tree);
      closeFd(tree);
    } else if (m.type === "pty") master = m.fd;
    else if (m.type === "error") {
      if (master !== undefined) closeFd(master);
      throw (await import("./childerror.ts")).childError(ops[m.op], m.errno, spec.process.args[0] ?? "", ops.slice(0, m.op));
    } else return master;
  }
}

/** fds of the namespaces the spec joins (by path), closed with the other fds. */
export function openJoinFds(spec: ContainerSpec, fds: number[]): ChildPlan["joinFds"] {
  const out: ChildPlan["joinFds"] = {};
  for (const n of spec.linux.namespaces) {
    if (!n.path) continue;
    try {
      out[n.type] = openSync(n.path, "r");
    } catch (e) {
      throw new NsboxError(`cannot join the ${n.type} namespace ${n.path}: ${(e as Error).message}`);
    }
    fds.push(out[n.type] as number);
  }
  return out;
}

function makeCgroup(spec: ContainerSpec, id: string): ContainerCgroup {
  try {
    return createCgroup(id, spec.linux.resources, spec.linux.cgroupsPath);
  } catch (e) {
    if (e instanceof CgroupError) throw new NsboxError(e.message);
    throw e;
  }
}

/** /sys/fs/cgroup inside: the container's own cgroup, read-only, right after /sys. */
function withCgroupMounts(spec: ContainerSpec, record: CgroupRecord): ContainerSpec {
  const privateNs = some(spec.linux.namespaces, (n) => n.type === "cgroup");
  const extra = cgroupMountsFor(record, privateNs);
  const at = findIndex(spec.mounts, (m) => m.destination === "/sys");
  const mounts = at < 0 ? [...spec.mounts, ...extra] : [...spec.mounts.slice(0, at + 1), ...extra, ...spec.mounts.slice(at + 1)];
  return { ...spec, mounts };
}

/** uid_map and gid_map of a new user namespace, written from outside (as root, or through newuidmap rootless). */
function writeIdMaps(spec: ContainerSpec, pid: number) {
  const fmt = (maps: IdMapping[] | undefined) => (maps ?? []).map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join("");
  if (!some(spec.linux.namespaces, (n) => n.type === "user" && !n.path)) return;
  if (spec.nsbox.rootless) {
    writeRootlessIdMaps(pid, spec.linux.uidMappings ?? [], spec.linux.gidMappings ?? []);
    return;
  }
  try {
    writeFileSync(`/proc/${pid}/uid_map`, fmt(spec.linux.uidMappings));
    writeFileSync(`/proc/${pid}/gid_map`, fmt(spec.linux.gidMappings));
  } catch (e) {
    throw new NsboxError(`cannot write the user namespace's id maps: ${(e as Error).message}`);
  }
}

/** The rootfs as the container's user namespace should see it (owned by its root). */
function idmappedRootfs(lowerDir: string, pid: number): number {
  const userns = openSync(`/proc/${pid}/ns/user`, "r");
  try {
    const fd = idmappedTree(lowerDir, userns);
    if (fd < 0)
      throw new NsboxError(
        `cannot make an idmapped mount of ${lowerDir} for --userns: ${strerror(-fd).toLowerCase()} (needs Linux 5.19+ and a filesystem that supports idmapped mounts, e.g. ext4, xfs, btrfs, tmpfs)`,
      );
    return fd;
  } finally {
    closeSync(userns);
  }
}

/** The overlay's upper and work dirs must belong to the container's root when it is remapped. */
function chownForUserns(spec: ContainerSpec, dataDir: string) {
  const uid = spec.linux.uidMappings?.find((m) => m.containerID === 0)?.hostID;
  const gid = spec.linux.gidMappings?.find((m) => m.containerID === 0)?.hostID;
  if (uid === undefined || gid === undefined || spec.nsbox.rootless) return; // rootless: they are the caller's, its root's
  for (const d of ["upper", "work"]) chownSync(join(dataDir, d), uid, gid);
}
