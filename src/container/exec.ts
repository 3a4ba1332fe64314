/**
 * `nsbox exec`: a new process inside a running container, as nsenter does it but
 * complete: it joins every namespace of the container (its user namespace first),
 * its cgroup, its root, its user, and runs like `run` does (terminal, signals,
 * exit codes).
 *
 *   nsbox --vfork+exec of the shim--> W: setns(pid) --clone--> C: setns(user, ipc, uts, net,
 *   cgroup, mnt) -> READY/GO (nsbox moves C into the cgroup) -> exec
 */

import { openCgroup, warmCgroupMoves } from "../cgroup/index.ts";
import type { User } from "../config/spec.ts";
import { fail, NsboxError } from "../errors.ts";
import { closeSync, openSync, readlinkSync } from "../native/fs.ts";
import { strerror } from "../native/libc.ts";
import { C, type Op, W } from "../native/program.ts";
import { shimFd } from "../native/shim.ts";
import { becomeSubreaper, closeFd, exitCodeOf, readChildPid, recvMessage, sendGo, spawnProcess, waitPid } from "../native/spawn.ts";
import { isRootless, setgroupsDenied } from "../rootless/identity.ts";
import type { Capabilities } from "../security/capabilities.ts";
import { filterFor, type LinuxSeccomp, recordedFilter } from "../security/seccomp-policy.ts";
import { exiting, type ProcId, startTime } from "../state/proc.ts";
import { mark } from "../trace.ts";
import { hostWinsize } from "../tty/relay.ts";
import { Foreground } from "./attached.ts";
import type { ContainerView } from "./lifecycle.ts";
import { CLONE, CLONE_OF_NSFILE, identitySteps } from "./plan.ts";

export interface ExecOptions {
  args: string[];
  env: string[];
  cwd: string;
  user: User;
  tty: boolean;
  interactive: boolean;
  /** the container's settings (or --privileged's), as `run` gave them to its process */
  capabilities?: Capabilities;
  noNewPrivileges?: boolean;
  seccomp?: LinuxSeccomp;
  /** where `run` cached that profile's filter (spec.nsbox.seccompKey) */
  seccompKey?: string;
}

const JOIN_ORDER = ["user", "ipc", "uts", "net", "cgroup", "mnt"] as const;
const SIGKILL = 9;

/** Opens the container's namespaces (skipping the ones it shares with us: joining our own user ns is refused). */
function openNamespaces(pid: number): Map<string, number> {
  const fds = new Map<string, number>();
  for (const t of [...JOIN_ORDER, "pid"]) {
    const path = `/proc/${pid}/ns/${t}`;
    if (t === "user" && readlinkSync(path) === readlinkSync(`/proc/self/ns/user`)) continue;
    fds.set(t, openSync(path, "r"));
  }
  return fds;
}

export async function execInContainer(v: ContainerView, o: ExecOptions): Promise<number> {
  const name = v.config.name ?? v.id.slice(0, 12);
  if (v.status !== "running") fail(`container ${name} is not running (${v.status}): start a new one with nsbox run`);
  const init = v.state.init as ProcId;
  const entering = { done: false };
  try {
    return await enter(v, o, init, entering);
  } catch (e) {
    // A container that exits while we enter it fails us in many places: the
    // namespace files vanish (ENOENT), setns into a dead pid's namespaces fails,
    // the cgroup refuses the move of our process, killed with the namespace
    // (ESRCH), or is gone (ENOENT, ENODEV). All of these mean one thing, as in
    // docker: the container is not running.
    if (!entering.done && exiting(init)) throw new NsboxError(`container ${name} is not running (it exited while nsbox exec was entering it)`);
    throw e;
  }
}

async function enter(v: ContainerView, o: ExecOptions, init: ProcId, entering: { done: boolean }): Promise<number> {
  // v1: the cgroup move's grace period (started by src/early.ts) is kept warm while
  // the namespaces are opened and the helper loads (see warmCgroupMoves); v2: the
  // process is born in the cgroup
  const cgroup = v.config.cgroup ? openCgroup(v.config.cgroup) : undefined;
  if (cgroup) warmCgroupMoves();
  const fds = openNamespaces(init.pid);
  mark("namespaces opened");
  const fg = new Foreground();
  let devnull = -1;
  let cgroupFd: number | undefined;
  try {
    // The fds are open: if the container died meanwhile, they are of a dead one.
    if (startTime(init.pid) !== init.start) fail(`container ${v.config.name ?? v.id.slice(0, 12)} is not running (it exited)`);
    devnull = o.interactive || o.tty ? -1 : openSync("/dev/null", "r");
    cgroupFd = cgroup?.cloneFd();
    // Rootless, only the container's user namespace gives the right to join its
    // pid namespace: W joins that first (C then inherits it).
    const userFirst = isRootless() && fds.has("user");
    const w: Op[] = [
      ...(userFirst ? [{ code: W.SETNS, fields: [fds.get("user") as number, CLONE.user], what: "join the user namespace" }] : []),
      { code: W.SETNS, fields: [fds.get("pid") as number, CLONE.pid], what: "join the pid namespace" },
      { code: W.CLONE, fields: [0, cgroupFd ?? -1], what: "create the process" },
      { code: W.EXIT, fields: [], what: "hand the process to nsbox" },
    ];
    // C is born non-dumpable (W makes itself so before the clone: csrc/child_interp.c),
    // so no process of the container may open its /proc/PID/exe before execve (CVE-2019-5736).
    const c: Op[] = [];
    for (const t of JOIN_ORDER) {
      const fd = fds.get(t);
      if (fd !== undefined && !(userFirst && t === "user"))
        c.push({ code: C.SETNS, fields: [fd, CLONE_OF_NSFILE[t] as number], what: `join the container's ${t} namespace` });
    }
    c.push({ code: C.SYNC, fields: [1, 1], what: "wait for nsbox" });
    c.push({ code: C.PDEATHSIG, fields: [SIGKILL], what: "tie the process to nsbox" });
    if (o.tty) {
      const ws = hostWinsize() ?? { rows: 0, cols: 0 };
      c.push({ code: C.TTY, fields: [ws.rows, ws.cols], what: "open a terminal in the container's /dev/pts" });
    } else {
      c.push({ code: C.SETSID, fields: [], what: "start a new session" });
      c.push({ code: C.STDIO, fields: [devnull, -1, -1], what: "set up stdin, stdout and stderr" });
    }
    identitySteps(
      c,
      { terminal: o.tty, user: o.user, args: o.args, env: o.env, cwd: o.cwd, capabilities: o.capabilities, noNewPrivileges: o.noNewPrivileges },
      o.seccomp ? (recordedFilter(o.seccompKey) ?? (await filterFor(o.seccomp))) : undefined,
      { keepGroups: setgroupsDenied(init.pid) },
    );
    // C runs the sealed shim, never nsbox's own binary, and execs the command (see c_exec in csrc/child_identity.c)
    c.push({ code: C.EXEC, fields: [0, shimFd(), o.args[0] ?? "", o.args, o.env], what: `exec ${JSON.stringify(o.args[0])}` });

    mark("program built");
    becomeSubreaper();
    const s = spawnProcess(w, c);
    mark("spawned");
    let pid = 0;
    try {
      pid = readChildPid(s);
      waitPid(s.wpid);
      if (pid <= 0) throw new NsboxError(`cannot enter the container: ${pid < 0 ? strerror(-pid).toLowerCase() : "the process died at once"}`);
      fg.track(pid);
      let master: number | undefined;
      for (;;) {
        const m = recvMessage(s);
        if (m.type === "ready") {
          cgroup?.join(pid);
          sendGo(s);
        } else if (m.type === "pty") master = m.fd;
        else if (m.type === "error") throw (await import("./childerror.ts")).childError(c[m.op], m.errno, o.args[0] ?? "", c.slice(0, m.op));
        else break;
      }
      entering.done = true;
      mark("process started");
      fg.attach(master, o.interactive);
      const status = await fg.wait();
      mark("process exited");
      return exitCodeOf(status);
    } finally {
      closeFd(s.syncFd);
      closeFd(s.statusFd);
    }
  } finally {
    await fg.dispose();
    for (const fd of fds.values()) closeSync(fd);
    if (devnull >= 0) closeSync(devnull);
    if (cgroupFd !== undefined) closeSync(cgroupFd);
    mark("cleaned up");
  }
}
