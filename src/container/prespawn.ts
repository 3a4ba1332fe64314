/**
 * A foreground run's first processes started before its program is complete.
 *
 * Starting the shim as W (a vfork and an execve), W's clone of C into a new pid
 * namespace and C's new mount, uts, ipc and network namespaces take 1.5-3 ms
 * during which nsbox itself only waits; nsbox's own work before the spawn (the
 * spec, the state, the layers, the /etc files, the cgroup) took as long again,
 * with the second core idle. So for the runs whose first steps are known from
 * their flags alone (bare namespaces: no pod, no --net host or container:, no
 * user namespace, not rootless, no cgroup v2 to be cloned into), nsbox starts
 * W and C as soon as the flags are parsed. C takes those first steps and then
 * waits (C_LOAD) for the rest of its program, which nsbox sends once it has
 * built it (src/container/create.ts).
 *
 * What C holds meanwhile is only its own new namespaces. If nsbox gives up
 * (a bad flag, a missing rootfs, any failure before the rest is sent) or dies,
 * C reads end-of-file and exits; nsbox reaps it and W (discard). When the
 * programs built for the final spec do not begin with what C did, nsbox
 * discards these and spawns anew, as without a prespawn.
 */
import { detectCgroups } from "../cgroup/detect.ts";
import { closeSync, openSync } from "../native/fs.ts";
import { C, encode, encodePrograms, LOAD_MAX, type Op, W } from "../native/program.ts";
import { becomeSubreaper, closeFd, readChildPid, type Spawned, sendProgram, spawnEncoded, waitPid } from "../native/spawn.ts";
import { isRootless } from "../rootless/identity.ts";
import { CLONE } from "./plan.ts";

export interface Prespawned {
  s: Spawned;
  /** the container's stdin when it has none (-i not given): opened before the spawn, so that C has it */
  devnull: number;
  /** W's program, and C's steps before C_LOAD (both as buildPrograms makes them for such a run) */
  w: Op[];
  first: Op[];
  /** taken by startContainer (or discarded): nobody else may use or discard it */
  taken: boolean;
}

/** What decides whether a foreground run can be prespawned: its flags. */
export interface PrespawnFlags {
  net?: string;
  pod?: string;
  userns?: string;
  cgroupManager?: string;
}

/** The first steps of a run with bare namespaces: C's as buildPrograms makes them (checked again in take). */
const firstSteps = (): { w: Op[]; first: Op[] } => ({
  w: [
    { code: W.CLONE, fields: [CLONE.pid, -1], what: "create the container process" },
    { code: W.EXIT, fields: [], what: "hand the container to nsbox" },
  ],
  first: [
    { code: C.UNSHARE, fields: [CLONE.mount | CLONE.uts | CLONE.ipc | CLONE.network], what: "create namespaces" },
    { code: C.IFUP, fields: ["lo"], what: "bring up the loopback interface" },
  ],
});

const LOAD: Op = { code: C.LOAD, fields: [], what: "receive the rest of the container's program" };

/** For a foreground run: starts W and C now when its flags make first steps that are known; undefined otherwise (or if that failed). */
export function prespawn(f: PrespawnFlags): Prespawned | undefined {
  if (f.pod !== undefined || f.userns !== undefined) return undefined;
  if (f.net !== undefined && f.net !== "none" && f.net !== "bridge") return undefined;
  if (isRootless() || (f.cgroupManager !== "none" && detectCgroups().mode === "v2")) return undefined;
  const { w, first } = firstSteps();
  let devnull = -1;
  try {
    devnull = openSync("/dev/null", "r");
    // C, once W exits, is ours to wait for
    becomeSubreaper();
    const s = spawnEncoded(encodePrograms(w, [...first, LOAD]));
    return { s, devnull, w, first, taken: false };
  } catch {
    if (devnull >= 0) closeSync(devnull);
    return undefined;
  }
}

const sameOps = (a: readonly Op[], b: readonly Op[]): boolean => {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as Op;
    const y = b[i] as Op;
    if (x.code !== y.code || x.fields.length !== y.fields.length) return false;
    for (let j = 0; j < x.fields.length; j++) if (x.fields[j] !== y.fields[j]) return false;
  }
  return true;
};

/**
 * The prespawned processes for these programs: the rest of C's program sent
 * (C goes on at once) and the steps C runs, for its error reports. Undefined
 * when they do not fit (then they are discarded: spawn anew).
 */
export function take(p: Prespawned, w: readonly Op[], c: readonly Op[]): { s: Spawned; ops: Op[] } | undefined {
  p.taken = true;
  const k = p.first.length;
  const rest = c.slice(k);
  const bytes = sameOps(p.w, w) && sameOps(p.first, c.slice(0, k)) ? encode(rest) : undefined;
  if (!bytes || bytes.length > LOAD_MAX) {
    discardNow(p);
    return undefined;
  }
  // a C that failed its first steps has said so on the socket: the handshake reads it
  sendProgram(p.s, bytes);
  return { s: p.s, ops: [...p.first, LOAD, ...rest] };
}

/** Ends prespawned processes that were not taken: C reads end-of-file and exits; both are reaped. */
export function discard(p: Prespawned | undefined): void {
  if (!p || p.taken) return;
  p.taken = true;
  closeFd(p.devnull);
  discardNow(p);
}

function discardNow(p: Prespawned): void {
  closeFd(p.s.syncFd);
  const pid = readChildPid(p.s);
  closeFd(p.s.statusFd);
  waitPid(p.s.wpid);
  if (pid > 0) waitPid(pid);
}
