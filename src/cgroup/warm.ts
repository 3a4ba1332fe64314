/**
 * Starts the kernel's slow part of a cgroup move early, off the main thread.
 *
 * Moving a process between cgroups takes cgroup_threadgroup_rwsem (one lock for
 * every hierarchy) for writing, and a writer that finds it idle first waits for
 * an RCU grace period (rcu_sync_enter; measured here: 2-16 ms, more than the rest
 * of a container start). Writers that come within a grace period or two after
 * another one pass at once (rcu_sync's GP_EXIT/GP_REPLAY states). So nsbox
 * rewrites its own pid into its own cgroup (a move to where it already is:
 * nothing changes) from a child process (src/native/away.ts) while it prepares
 * the rest: once in the
 * first module that runs (src/early.ts), so that the grace period passes while
 * the modules load and the spec is built, and again once the container's cgroups
 * exist (exec: once it is entering), which keeps the lock warm until the real move.
 * The waiting writer holds cgroup_mutex, so a mkdir of a cgroup behind it
 * waits for the rest of the grace period: the move it spares comes later anyway.
 * Only for cgroup v1 (hybrid hosts too): on v2 nothing is moved.
 */
import { filter } from "../list.ts";
import { awayDone, awayResult, writeAway } from "../native/away.ts";
import { join } from "../posixpath.ts";
import { detectCgroups } from "./detect.ts";

/** The warm-ups' writers not reaped yet, and the last one started. */
let inFlight: number[] = [];
let last: number | undefined;

/** Returns whether a warm-up was started. */
export function warmCgroupMoves(): boolean {
  const host = detectCgroups();
  // cgroup v2: processes are born in their cgroup (clone3's CLONE_INTO_CGROUP,
  // see V2Cgroup.cloneFd), nothing is moved, and a warm-up would only hold
  // cgroup_mutex against the container's mkdir.
  if (host.mode === "v2") return false;
  const dir = host.v1Mounts.get("pids") && join(host.v1Mounts.get("pids") as string, host.v1Own.get("pids") ?? "/");
  if (!dir) return false;
  inFlight = filter(inFlight, (pid) => awayDone(pid, true) === undefined);
  // only a speed-up: a refusal changes nothing, and no writer free means no warm-up
  const pid = writeAway(join(dir, "cgroup.procs"), `${process.pid}\n`);
  if (pid === undefined) return false;
  inFlight.push(pid);
  last = pid;
  return true;
}

/** Settles when the last warm-up's write is done: its grace period passed and cgroup_mutex is free. */
export function cgroupMovesWarm(): Promise<void> {
  const pid = last;
  if (pid === undefined) return Promise.resolve();
  return awayResult(pid).then(() => {
    inFlight = filter(inFlight, (p) => p !== pid);
  });
}

/**
 * Reaps every warm-up's writer, waiting for those still writing: called once the
 * container has joined its cgroup (by then each of their writes, which the join
 * queued behind, is done), so that none is left a zombie for the shim that
 * waits for the container in nsbox's place.
 */
export function settleWarmUps(): void {
  for (const pid of inFlight) awayDone(pid, false);
  inFlight = [];
  last = undefined;
}
