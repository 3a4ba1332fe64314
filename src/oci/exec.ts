/**
 * OCI exec: a new process in a created or running container, described by
 * --process FILE (a runtime-spec process object, as containerd's shim writes
 * it) or by ARGS on top of the container's own config.json process, as runc
 * does (--cwd, --env, --user, --cap, --tty, --no-new-privs override it).
 *
 *   nsbox --fork--> W: setns(pid) --clone--> C: setns(user, ipc, uts, net,
 *   cgroup, mnt) -> READY (cgroup join, rlimits) -> GO -> identity -> exec
 *
 * --detach: the process is left to the caller's subreaper (nsbox waits only
 * for its execve); else nsbox waits for it and exits with its code.
 */

import { openCgroup } from "../cgroup/index.ts";
import type { Process } from "../config/spec.ts";
import { childError } from "../container/childerror.ts";
import { CLONE, CLONE_OF_NSFILE, identitySteps } from "../container/plan.ts";
import { sysMessage } from "../errors.ts";
import { closeSync, openSync, readFileSync, readlinkSync, writeFileSync } from "../native/fs.ts";
import { strerror } from "../native/libc.ts";
import { sendFdTo } from "../native/ocisys.ts";
import { C, type Op, W } from "../native/program.ts";
import { shimFd } from "../native/shim.ts";
import { becomeSubreaper, closeFd, exitCodeOf, readChildPid, recvMessage, sendGo, spawnProcess, waitPid } from "../native/spawn.ts";
import { join } from "../posixpath.ts";
import { CAP_NAMES } from "../security/capabilities.ts";
import { parseJsonExact } from "../security/seccomp/json.ts";
import { ConfigError, loadBundle, parseProcess } from "./config.ts";
import { apparmorStep, applyRlimits, rlimitSteps, seccompFilterOf, writePidFile } from "./create.ts";
import { mustRecord, statusOf } from "./state.ts";

export interface ExecFlags {
  id: string;
  processFile?: string;
  args: string[];
  tty: boolean;
  consoleSocket?: string;
  pidFile?: string;
  detach: boolean;
  cwd?: string;
  env: string[];
  user?: string;
  additionalGids: string[];
  caps: string[];
  noNewPrivs: boolean;
  preserveFds: number;
}

const JOIN_ORDER = ["user", "ipc", "uts", "net", "cgroup", "time", "mnt"] as const;
const SIGKILL = 9;
const FORWARD = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

/** The process to run: --process FILE whole, or the container's process with ARGS and the flags over it. */
function processFor(f: ExecFlags, base: Process): { proc: Process; apparmor?: string } {
  if (f.processFile) {
    let data: unknown;
    try {
      data = parseJsonExact(readFileSync(f.processFile, "utf8"), f.processFile);
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ? `cannot read it: ${sysMessage(e)}` : (e as Error).message;
      throw new ConfigError(`exec --process ${f.processFile}: ${why}`);
    }
    try {
      const p = parseProcess(data);
      return { proc: p.process, apparmor: p.apparmor };
    } catch (e) {
      throw new ConfigError((e as Error).message.replace(/^config\.json: process\.?/, `exec --process ${f.processFile}: `));
    }
  }
  if (!f.args.length) throw new ConfigError("exec needs a command (ARGS after the id) or --process FILE");
  const proc: Process = { ...base, args: f.args, terminal: f.tty, consoleSize: undefined };
  if (f.cwd) proc.cwd = f.cwd;
  if (f.env.length) {
    const keys = new Set(f.env.map((e) => e.split("=")[0]));
    proc.env = [...base.env.filter((e) => !keys.has(e.split("=")[0])), ...f.env];
  }
  if (f.user) {
    const m = /^(\d+)(?::(\d+))?$/.exec(f.user);
    if (!m) throw new ConfigError(`--user ${f.user}: give UID or UID:GID (numbers)`);
    proc.user = { uid: Number(m[1]), gid: Number(m[2] ?? 0), additionalGids: base.user.additionalGids, name: f.user };
  }
  if (f.additionalGids.length) proc.user = { ...proc.user, additionalGids: f.additionalGids.map(Number) };
  if (f.caps.length && proc.capabilities) {
    const add = f.caps.map((c) => (c.toUpperCase().startsWith("CAP_") ? c.toUpperCase() : `CAP_${c.toUpperCase()}`));
    for (const c of add) if (!(CAP_NAMES as readonly string[]).includes(c)) throw new ConfigError(`--cap ${c}: not a capability name`);
    const k = proc.capabilities;
    const plus = (set: string[]) => [...new Set([...set, ...add])];
    proc.capabilities = {
      bounding: plus(k.bounding),
      effective: plus(k.effective),
      permitted: plus(k.permitted),
      inheritable: plus(k.inheritable),
      ambient: k.ambient,
    };
  }
  if (f.noNewPrivs) proc.noNewPrivileges = true;
  return { proc };
}

export async function ociExec(f: ExecFlags): Promise<number> {
  const r = mustRecord(f.id);
  const status = statusOf(r);
  if (status !== "running" && status !== "created") throw new ConfigError(`cannot exec in container ${f.id}: it is ${status}`);
  const bundle = loadBundle(r.bundle);
  const { proc, apparmor } = processFor(f, bundle.spec.process);
  if (proc.terminal && !f.consoleSocket) throw new ConfigError("exec with a terminal needs --console-socket: the terminal would have nowhere to go");
  const fds = new Map<string, number>();
  for (const t of [...JOIN_ORDER, "pid"]) {
    const path = `/proc/${r.pid}/ns/${t}`;
    try {
      if (t === "user" && readlinkSync(path) === readlinkSync("/proc/self/ns/user")) continue;
      fds.set(t, openSync(path, "r"));
    } catch {
      for (const fd of fds.values()) closeSync(fd);
      throw new ConfigError(`cannot exec in container ${f.id}: it is not running`);
    }
  }
  try {
    const w: Op[] = [
      { code: W.SETNS, fields: [fds.get("pid") as number, CLONE.pid], what: "join the pid namespace" },
      { code: W.CLONE, fields: [0, -1], what: "create the process" },
      { code: W.EXIT, fields: [], what: "hand the process over" },
    ];
    // born non-dumpable, as every C (see src/container/exec.ts)
    const c: Op[] = [];
    for (const t of JOIN_ORDER) {
      const fd = fds.get(t);
      if (fd !== undefined) c.push({ code: C.SETNS, fields: [fd, CLONE_OF_NSFILE[t] as number], what: `join the container's ${t} namespace` });
    }
    // A container without a mount namespace was entered with chroot (see plan.ts): so is its exec, as runc's
    // (one joined by path was pivoted into its rootfs like a new one: joining it is enough)
    if (!bundle.spec.linux.namespaces.some((n) => n.type === "mount"))
      c.push({ code: C.CHROOT, fields: [`/proc/${r.pid}/root`], what: "chroot into the container's root" });
    c.push({ code: C.SYNC, fields: [1, 1], what: "wait for nsbox" });
    if (!f.detach) c.push({ code: C.PDEATHSIG, fields: [SIGKILL], what: "tie the process to nsbox" });
    if (proc.terminal) {
      const ws = proc.consoleSize ?? { height: 0, width: 0 };
      c.push({ code: C.TTY, fields: [ws.height, ws.width], what: "open a terminal in the container's /dev/pts" });
    } else {
      c.push({ code: C.SETSID, fields: [], what: "start a new session" });
    }
    if (proc.user.umask !== undefined) c.push({ code: C.UMASK, fields: [proc.user.umask], what: "set the umask" });
    const filter = bundle.spec.linux.seccomp ? await seccompFilterOf(bundle.spec) : undefined;
    if (apparmor) c.push(apparmorStep(apparmor));
    identitySteps(c, proc, filter, { tieToParent: !f.detach });
    rlimitSteps(c, proc.rlimits);
    // no wait (fd -1), but fds 3..3+N-1 kept
    if (f.preserveFds) c.push({ code: C.WAITSTART, fields: [-1, f.preserveFds], what: "keep the preserved fds" });
    c.push({ code: C.EXEC, fields: [0, shimFd(), proc.args[0] ?? "", proc.args, proc.env], what: `exec ${JSON.stringify(proc.args[0])}` });

    if (!f.detach) becomeSubreaper();
    const s = spawnProcess(w, c);
    let pid = 0;
    try {
      pid = readChildPid(s);
      waitPid(s.wpid);
      if (pid <= 0) throw new ConfigError(`cannot enter container ${f.id}: ${pid < 0 ? strerror(-pid).toLowerCase() : "the process died at once"}`);
      for (;;) {
        const m = recvMessage(s);
        if (m.type === "ready") {
          try {
            if (r.cgroup) openCgroup(r.cgroup).join(pid);
            if (r.freezer) writeFileSync(join(r.freezer, "cgroup.procs"), String(pid));
            applyRlimits(pid, proc.rlimits);
            if (proc.oomScoreAdj !== undefined) writeFileSync(`/proc/${pid}/oom_score_adj`, String(proc.oomScoreAdj));
          } catch (e) {
            process.kill(pid, "SIGKILL");
            throw new ConfigError(`cannot exec in container ${f.id}: ${(e as Error).message}`);
          }
          sendGo(s);
        } else if (m.type === "pty") {
          try {
            sendFdTo(f.consoleSocket as string, m.fd);
          } finally {
            closeFd(m.fd);
          }
        } else if (m.type === "error") {
          throw childError(c[m.op], m.errno, proc.args[0] ?? "", c.slice(0, m.op));
        } else break;
      }
    } catch (e) {
      if (pid > 0 && !f.detach) waitPid(pid);
      throw e;
    } finally {
      closeFd(s.syncFd);
      closeFd(s.statusFd);
    }
    if (f.pidFile) writePidFile(f.pidFile, pid);
    if (f.detach) return 0;
    const forward = (sig: NodeJS.Signals) => {
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    };
    for (const sg of FORWARD) process.on(sg, forward);
    let st = 0;
    for (;;) {
      const wr = waitPid(pid, true);
      if (wr.pid === pid) {
        st = wr.status;
        break;
      }
      if (wr.pid < 0) break;
      await Bun.sleep(5);
    }
    for (const sg of FORWARD) process.off(sg, forward);
    return exitCodeOf(st);
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
}
