/**
 * A container's life after it started: what state it is in (derived from its
 * files and from whether its processes still exist), stop, kill, rm, wait, and
 * the repair of containers that an interrupted nsbox left half-done.
 *
 * Truth comes from the kernel: a container is running only while its PID 1 (pid
 * and start time) exists; then its exit file gives the code; failing that, nsbox
 * says the code is unknown rather than guess.
 */

import { openCgroup } from "../cgroup/index.ts";
import { fail } from "../errors.ts";
import { log } from "../log.ts";
import { flock, LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN } from "../native/flock.ts";
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from "../native/fs.ts";
import { closeFd, exitCodeOf, pidfdOpen, pidfdSignal } from "../native/spawn.ts";
import { basename, join } from "../posixpath.ts";
import { removeTree } from "../rootless/storage.ts";
import { roots } from "../state/paths.ts";
import { alive, type ProcId, parentPid, startTime, zombieStatus } from "../state/proc.ts";
import {
  type ContainerConfig,
  type ContainerState,
  containerDir,
  type ExitRecord,
  listIds,
  readConfig,
  readExitFile,
  readState,
  releaseName,
  removeContainerDir,
  removeContainerDirAfterExit,
  removeDoomed,
  removeStaleName,
  staleNames,
  tempDirs,
  withLock,
  writeState,
} from "../state/store.ts";
import { mark } from "../trace.ts";
import { doomedDataDirs, orphanDataDirs, releaseResources } from "./release.ts";

export type Status = "created" | "running" | "exited";

export interface ContainerView {
  id: string;
  config: ContainerConfig;
  state: ContainerState;
  status: Status;
  exit?: ExitRecord;
}

/** The exit code nsbox gives when the status is unknown: containerd's UnknownExitStatus. */
export const UNKNOWN_EXIT_CODE = 255;

/**
 * The exit record of a container whose PID 1 is gone. Without the exit file
 * (its monitor, or its foreground nsbox, died first), the status is the
 * kernel's if PID 1 is still a zombie nobody reaped (the host's init reaps it
 * soon), else unknown; either way, the time is when nsbox saw it, and the note
 * says so. Nothing is assumed.
 */
function exitOf(id: string, config: ContainerConfig, state: ContainerState): ExitRecord {
  if (state.exit) return state.exit;
  const f = readExitFile(id);
  if (f) return { waitStatus: f.waitStatus, code: f.waitStatus < 0 ? UNKNOWN_EXIT_CODE : exitCodeOf(f.waitStatus), finishedAt: f.finishedAt };
  const keeper = config.detached ? "the monitor died" : "its nsbox died";
  const observedAt = new Date().toISOString();
  const seen = zombieStatus(state.init);
  if (seen !== undefined)
    return { waitStatus: seen, code: exitCodeOf(seen), finishedAt: observedAt, note: `${keeper}; the status was read from the kernel, at the time shown` };
  return { waitStatus: -1, code: UNKNOWN_EXIT_CODE, finishedAt: observedAt, note: `${keeper}; exit status unknown (observed at ${observedAt})` };
}

export function viewOf(id: string): ContainerView | undefined {
  const config = readConfig(id);
  const state = readState(id);
  if (!config || !state) return undefined;
  if (state.phase === "creating") return { id, config, state, status: "created" };
  if (state.phase === "running" && alive(state.init)) return { id, config, state, status: "running" };
  return { id, config, state, status: "exited", exit: exitOf(id, config, state) };
}

export function mustView(id: string): ContainerView {
  const v = viewOf(id);
  if (!v) fail(`no such container: ${id.slice(0, 12)}`);
  return v;
}

export function allViews(): ContainerView[] {
  return listIds()
    .map(viewOf)
    .filter((v): v is ContainerView => !!v)
    .sort((a, b) => b.config.created.localeCompare(a.config.created));
}

/**
 * Marks an exited container as such and gives back its host resources (and, for
 * --rm and foreground containers, everything). Call with the container's lock held.
 * known: its config as the caller wrote it (a foreground run), spared a re-read;
 * the state is read again in any case.
 */
export async function finalize(id: string, oomCheck = true, quick = false, known?: ContainerConfig): Promise<void> {
  const config = known ?? readConfig(id);
  const state = readState(id);
  if (!config || !state) return;
  if (state.phase === "running" && alive(state.init)) return;
  if (state.phase === "creating") {
    // A creation whose nsbox died (its creator, alive, finishes or undoes it
    // itself): undone, whoever gets here first, the repair or the monitor's own
    // cleanup. The monitor (named in the state since the spawn) goes first:
    // nothing could find it once the record is gone.
    if (alive(state.owner)) return;
    await endMonitor(state.monitor, id);
    await releaseResources(config);
    mark("repair: released");
    removeEverything(config);
    return;
  }
  if (config.autoRemove) {
    // Nothing will read its state again: release and remove (a crash in between
    // leaves a dead container that the next reconcile finishes the same way).
    await releaseResources(config, quick);
    removeEverything(config, quick);
    return;
  }
  if (state.phase !== "exited") {
    const exit = exitOf(id, config, state);
    if (oomCheck && config.cgroup) {
      try {
        if (openCgroup(config.cgroup).oomKills() > 0) exit.oomKilled = true;
      } catch {
        // cgroup already gone
      }
    }
    state.phase = "exited";
    state.exit = exit;
    writeState(id, state);
  }
  if (!state.released) {
    await releaseResources(config);
    state.released = true;
    writeState(id, state);
  }
}

/**
 * The state dir and the name go last: until then the container can be found and
 * repaired. quick: nsbox is about to exit, and the dir is removed after it.
 */
export function removeEverything(config: ContainerConfig, quick = false): void {
  if (quick) removeContainerDirAfterExit(config.id);
  else removeContainerDir(config.id);
  if (config.name) releaseName(config.name, config.id);
}

/** Takes the container's lock if free; false when another nsbox is working on it. */
function tryLock(id: string): number | undefined {
  const fd = openLock(id);
  if (fd === undefined) return undefined;
  if (flock(fd, LOCK_EX | LOCK_NB)) return fd;
  closeSync(fd);
  return undefined;
}

/** The container's lock file, opened (undefined when the container is gone). */
function openLock(id: string): number | undefined {
  try {
    return openSync(join(containerDir(id), "lock"), "r");
  } catch {
    return undefined;
  }
}

function unlock(fd: number) {
  flock(fd, LOCK_UN);
  closeSync(fd);
}

/**
 * Repairs what interrupted nsbox commands left: creations whose nsbox died,
 * foreground containers whose nsbox died, detached containers whose monitor
 * died, releases and removals cut short. Every command that lists containers
 * runs this first, so what it shows is consistent.
 */
export async function reconcile(): Promise<void> {
  removeDoomed();
  // layers an exit keeper was to remove after a foreground run, killed before it had (removeTreeAfterExit)
  for (const dir of doomedDataDirs(roots().data)) {
    try {
      removeTree(dir);
    } catch (e) {
      log.warn(`cannot remove ${dir}, left by an interrupted removal: ${(e as Error).message}`);
    }
  }
  for (const t of tempDirs()) if (!existsSync(`/proc/${t.pid}`)) rmSync(t.path, { recursive: true, force: true });
  // Data dirs are listed before the state dirs: a container's state dir exists
  // before its data dir, so one created meanwhile is never taken for an orphan.
  const dataDirs = orphanDataDirs(roots().data, new Set());
  for (const id of listIds()) {
    killOrphan(id);
    if (!isStuck(id)) continue;
    const fd = tryLock(id);
    if (fd === undefined) continue; // someone is on it
    try {
      // What was read before the lock may be stale (the creator may have
      // finished meanwhile): decide again, on what is there now.
      if (!isStuck(id)) continue;
      await finalize(id);
    } finally {
      unlock(fd);
    }
  }
  for (const n of staleNames()) removeStaleName(n);
  const known = new Set(listIds());
  for (const dir of dataDirs) {
    if (known.has(basename(dir))) continue;
    // only layers that this state root created (another --state may share the data root)
    let owner: string | undefined;
    try {
      owner = readFileSync(join(dir, ".state-root"), "utf8");
    } catch {
      // not marked: not ours to remove
    }
    if (owner === roots().state) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A running container whose monitor (or foreground nsbox) is gone while its
 * PID 1 lives: the kernel did not kill it with its parent because PID 1 exec'd
 * a set-id or file-capability program, which clears PR_SET_PDEATHSIG. Nobody
 * logs it or records its exit now: it is killed, and finalize records that.
 */
function killOrphan(id: string): void {
  const orphan = () => {
    const state = readState(id);
    const config = readConfig(id);
    if (!state || !config || state.phase !== "running" || !alive(state.init)) return undefined;
    const keeper = config.detached ? state.monitor : state.owner;
    return keeper && !alive(keeper) ? { state, config } : undefined;
  };
  if (!orphan()) return;
  const fd = tryLock(id);
  if (fd === undefined) return; // someone is on it
  try {
    const o = orphan(); // again, under the lock
    if (o) killOrphanLocked(id, o.config, o.state);
  } finally {
    unlock(fd);
  }
}

function killOrphanLocked(id: string, config: ContainerConfig, state: ContainerState): void {
  const v: ContainerView = { id, config, state, status: "running" };
  if (signalInit(v, SIGNALS.KILL as number)) {
    const status = 9; // SIGKILL, sent by us: the status is known
    writeState(id, {
      ...state,
      phase: "exited",
      exit: {
        waitStatus: status,
        code: exitCodeOf(status),
        finishedAt: new Date().toISOString(),
        note: `${config.detached ? "the monitor died" : "its nsbox died"} and PID 1 outlived it: killed by nsbox (SIGKILL)`,
      },
    });
  }
}

/** A container that an interrupted nsbox left half-done (and that nobody is working on). */
function isStuck(id: string): boolean {
  const state = readState(id);
  const config = readConfig(id);
  if (!state || !config) return false;
  return (
    (state.phase === "creating" && !alive(state.owner)) ||
    (state.phase === "running" && !alive(state.init) && !alive(config.detached ? state.monitor : state.owner)) ||
    (state.phase === "exited" && (!state.released || config.autoRemove))
  );
}

/** Records which state root a data dir belongs to (see reconcile). */
export function markDataDir(dataDir: string): void {
  writeFileSync(join(dataDir, ".state-root"), roots().state);
}

/** Sends sig to the container's PID 1, through a pidfd so that a reused pid is never hit. */
export function signalInit(v: ContainerView, sig: number): boolean {
  const init = v.state.init as ProcId | undefined;
  if (!init) return false;
  const fd = pidfdOpen(init.pid);
  if (fd < 0) return false;
  try {
    if (startTime(init.pid) !== init.start) return false; // a different process now
    return pidfdSignal(fd, sig) === 0;
  } finally {
    closeFd(fd);
  }
}

/** Resolves when the container's PID 1 is gone, or after timeoutMs (false then). */
export async function waitGone(init: ProcId | undefined, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    if (!alive(init)) return true;
    if (Date.now() >= end) return false;
    await Bun.sleep(delay);
  }
}

export const SIGNALS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  PWR: 30,
  SYS: 31,
};

/** "TERM", "SIGTERM", "15" -> 15. */
export function parseSignal(text: string): number {
  const t = text.toUpperCase().replace(/^SIG/, "");
  if (/^\d+$/.test(t) && Number(t) >= 1 && Number(t) <= 64) return Number(t);
  const n = SIGNALS[t];
  if (n === undefined) fail(`unknown signal "${text}": use a name like TERM, KILL, HUP or a number from 1 to 64`);
  return n;
}

/**
 * stop: SIGTERM, then SIGKILL after timeoutS; returns when PID 1 is gone and its
 * monitor's cleanup has given back the cgroup, layers and network (as docker's
 * stop returns once the daemon is done), so what follows sees them free.
 */
export async function stopContainer(v: ContainerView, timeoutS: number): Promise<void> {
  if (v.status !== "running") return;
  // an image's StopSignal (e.g. SIGQUIT for nginx) replaces SIGTERM, as docker stop does
  const stopSignal = v.config.spec.nsbox.stopSignal;
  signalInit(v, stopSignal ? parseSignal(stopSignal) : (SIGNALS.TERM as number));
  if (!(await waitGone(v.state.init, timeoutS * 1000))) {
    signalInit(v, SIGNALS.KILL as number);
    if (!(await waitGone(v.state.init, 10000))) fail(`container ${v.id.slice(0, 12)} did not die after SIGKILL`);
  }
  if (!v.config.detached) return;
  for (let delay = 5, end = Date.now() + 10000; Date.now() < end; delay = Math.min(delay * 2, 50)) {
    const s = readState(v.id);
    if (!s || s.released || !alive(s.monitor)) return;
    await Bun.sleep(delay);
  }
}

/**
 * rm: the container must have exited (or -f kills it first); then everything
 * goes, and rm returns only once it is gone: no monitor or cleanup of it still
 * running (as wait promises for its exit). A pod's infra container goes only
 * with its pod (pod rm), as docker and podman have it: removing it alone would
 * leave a pod that no command can find.
 */
export async function removeContainer(id: string, force: boolean, opts: { withPod?: boolean } = {}): Promise<void> {
  const first = mustView(id);
  const infra = first.config.spec.nsbox.infra;
  if (infra && !opts.withPod)
    fail(
      `container ${first.config.name ?? id.slice(0, 12)} is the infra container of pod ${infra.podName}: remove the pod instead (nsbox pod rm -f ${infra.podName})`,
    );
  const v = await afterCreation(first);
  if (!v) return; // its creation failed, and took everything away
  if (v.status === "running") {
    if (!force) fail(`container ${v.config.name ?? id.slice(0, 12)} is running: stop it first, or use rm -f`);
    signalInit(v, SIGNALS.KILL as number);
    if (!(await waitGone(v.state.init, 10000))) fail(`container ${id.slice(0, 12)} did not die after SIGKILL`);
    mark("rm: init killed");
  }
  await endKeeper(v);
  mark("rm: keeper ended");
  if (!existsSync(containerDir(id))) return; // a --rm container's own cleanup removed it first
  await withLock(id, async () => {
    await finalize(id);
    // finalize leaves a live container as it is: its record must stay with it
    // (afterCreation makes this impossible; a container never starts twice)
    if (viewOf(id)?.status === "running") fail(`container ${id.slice(0, 12)} is running again: remove it again`);
    const config = readConfig(id);
    if (config) removeEverything(config);
  });
}

/**
 * The container as it is once a creation under way is over. While its nsbox
 * creates it (holding its lock), a container is "created" and has no PID 1 in
 * its record yet: removing it then would leave the process (and its monitor)
 * that the creation starts a moment later with no record. So rm waits for the
 * creator to finish or fail (the lock), then decides on what is there.
 */
async function afterCreation(v: ContainerView): Promise<ContainerView | undefined> {
  let now: ContainerView | undefined = v;
  for (let delay = 2; now && now.status === "created" && alive(now.state.owner); delay = Math.min(delay * 2, 50)) {
    const fd = openLock(now.id);
    if (fd === undefined) return undefined;
    flock(fd, LOCK_EX); // the creator holds it from just after the record appears until the container runs
    unlock(fd);
    now = viewOf(now.id);
    // (the record appears a moment before its creator locks it: then look again)
    if (now?.status === "created" && alive(now.state.owner)) await Bun.sleep(delay);
  }
  return now;
}

/**
 * Once PID 1 is gone, what is left of a detached container's monitor (draining
 * the last output, writing the exit status, or its `nsbox cleanup`) only does
 * what rm is about to do or throw away: it is ended now (its pid and start time
 * pinned by a pidfd), so that rm never returns while it still works. A
 * foreground container's nsbox run is waited for instead: it is the user's
 * command, and it ends once it has cleaned up.
 */
async function endKeeper(v: ContainerView): Promise<void> {
  const state = readState(v.id) ?? v.state;
  if (!v.config.detached) {
    if (state.owner && state.owner.pid !== process.pid) await waitGone(state.owner, 10000);
    return;
  }
  await endMonitor(state.monitor, v.id, state.init);
}

/**
 * SIGKILL of a container's monitor, by identity (a pidfd, checked against the
 * recorded start time: a reused pid is never hit), and the wait for it to go.
 * With the container's PID 1 (dead by now): the monitor, its parent, first
 * reaps it. Killed before it did, it would hand the zombie to the host's init,
 * which may reap late (the init of these CI machines polls every 1.8 s), and
 * the pid would outlive rm. So the monitor is continued (someone may have
 * stopped it) and given up to a second (it reaps at once, woken by SIGCHLD).
 */
export async function endMonitor(monitor: ProcId | undefined, id: string, init?: ProcId): Promise<void> {
  // (the monitor's own cleanup, nsbox exec'd in its place, never ends itself)
  if (!monitor || monitor.pid === process.pid || !alive(monitor)) return;
  const fd = pidfdOpen(monitor.pid);
  if (fd < 0) return;
  try {
    if (startTime(monitor.pid) === monitor.start) {
      // (only while PID 1 is still the monitor's child: another parent would not be helped by the wait)
      const unreaped = () => parentPid(init) === monitor.pid;
      if (unreaped()) {
        pidfdSignal(fd, SIGNALS.CONT as number);
        const end = Date.now() + 1000;
        for (let delay = 1; unreaped() && Date.now() < end; delay = Math.min(delay * 2, 20)) await Bun.sleep(delay);
      }
      pidfdSignal(fd, SIGNALS.KILL as number);
    }
  } finally {
    closeFd(fd);
  }
  if (!(await waitGone(monitor, 10000))) fail(`the monitor of container ${id.slice(0, 12)} did not die after SIGKILL`);
}

/**
 * Exit code of a container once it has exited (waits for it).
 *
 * A --rm container: holds a shared lock meanwhile, so that its cleanup (which
 * needs the lock) cannot remove the exit status before it has been read.
 * A kept container: returns only once its monitor has also given back its
 * address, ports and cgroup (state.released), so that a script can reuse them
 * right after `nsbox wait`; the lock is let go between looks, or that cleanup
 * could never take it.
 */
export async function waitExit(id: string): Promise<ExitRecord> {
  let fd: number;
  try {
    fd = openSync(join(containerDir(id), "lock"), "r");
  } catch {
    fail(`container ${id.slice(0, 12)} was removed before it could be waited for`);
  }
  try {
    flock(fd, LOCK_SH);
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      const v = viewOf(id);
      if (!v) fail(`container ${id.slice(0, 12)} was removed before it could be waited for`);
      if (v.status === "exited") {
        const keeperAlive = alive(v.config.detached ? v.state.monitor : v.state.owner);
        const known = v.state.exit || readExitFile(id) || !keeperAlive;
        // The record as of now: v was read before the exit file, which the monitor may have
        // written since (it reaps PID 1, then writes it: v's record then said "unknown", 255;
        // seen once in CI under load). The lock we hold keeps the container from being removed.
        if (known && (v.config.autoRemove || v.state.released || !keeperAlive)) return (viewOf(id) ?? v).exit as ExitRecord;
      }
      if (v.config.autoRemove) {
        await Bun.sleep(delay);
      } else {
        flock(fd, LOCK_UN);
        await Bun.sleep(delay);
        flock(fd, LOCK_SH);
      }
    }
  } finally {
    flock(fd, LOCK_UN);
    closeSync(fd);
  }
}
