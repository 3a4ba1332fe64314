/**
 * OCI hooks: each runs with the container's state JSON on its stdin, with its
 * own argv (args[0] included) and exactly its env, and is killed after its
 * timeout. A failing hook fails create/start (prestart, createRuntime,
 * createContainer, startContainer); poststart and poststop failures are warnings,
 * as the runtime-spec says.
 *
 * Where they run, as the runtime-spec says: startContainer in the container's
 * namespaces, found in its filesystem (the helper's W joins them and execs the
 * hook by fd). createContainer in the container's namespaces too, but found in
 * the runtime's (opened by nsbox before W joins), at a stop of the container's
 * process after its mounts and before pivot_root (hookSyncPoint): its mount
 * namespace's root is still the host's, so a host binary finds its loader,
 * and the container's mounts are there under the rootfs path, as under runc.
 * Neither joins the pid namespace (W would have to fork: the hook stays where
 * the state's pid means something). The others run in the runtime's namespaces.
 */

import { CLONE } from "../container/plan.ts";
import { log } from "../log.ts";
import { openSync, readlinkSync, writeSync } from "../native/fs.ts";
import { strerror } from "../native/libc.ts";
import { C, type Op, W } from "../native/program.ts";
import { closeFd, exitCodeOf, makePipe, readChildPid, spawnProcess, waitPid } from "../native/spawn.ts";
import { ConfigError, type Hook, type HookKind, type Hooks } from "./config.ts";

/** The container's process, for the hooks that run in its namespaces. */
export interface HookTarget {
  pid: number;
}

const IN_CONTAINER: HookKind[] = ["startContainer", "createContainer"];
/** Hooks whose path is resolved in the runtime's mount namespace though they run in the container's. */
const RUNTIME_PATH: HookKind[] = ["createContainer"];

export async function runHooks(hooks: Hooks, kind: HookKind, state: object, target?: HookTarget): Promise<void> {
  const list = hooks[kind] ?? [];
  for (const [i, h] of list.entries()) {
    try {
      if (target && IN_CONTAINER.includes(kind)) await runHookInContainer(h, state, target.pid, RUNTIME_PATH.includes(kind));
      else await runHook(h, state);
    } catch (e) {
      const msg = `${kind} hook ${i} (${h.path}) failed: ${(e as Error).message}`;
      if (kind === "poststart" || kind === "poststop") log.warn(msg);
      else throw new ConfigError(msg);
    }
  }
}

async function runHook(h: Hook, state: object): Promise<void> {
  const env = Object.fromEntries(
    (h.env ?? []).map((e) => [e.slice(0, e.indexOf("=") < 0 ? e.length : e.indexOf("=")), e.includes("=") ? e.slice(e.indexOf("=") + 1) : ""]),
  );
  const args = h.args?.length ? h.args : [h.path];
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn({ cmd: [h.path, ...args.slice(1)], argv0: args[0], env, stdin: "pipe", stdout: "ignore", stderr: "pipe" });
  } catch (e) {
    throw new Error((e as Error).message);
  }
  // A hook need not read its stdin: one that exits first makes the write fail
  // with EPIPE, which says nothing about the hook (Go's exec, hence runc, ignores it too).
  const stdin = proc.stdin as import("bun").FileSink;
  try {
    stdin.write(JSON.stringify(state));
    await stdin.end();
  } catch {
    // the hook's status below is what counts
  }
  let timedOut = false;
  const timer = h.timeout
    ? setTimeout(() => {
        timedOut = true;
        proc.kill("SIGKILL");
      }, h.timeout * 1000)
    : undefined;
  const code = await proc.exited;
  if (timer) clearTimeout(timer);
  if (timedOut) throw new Error(`timed out after ${h.timeout}s`);
  if (code !== 0) {
    const err = (await new Response(proc.stderr as ReadableStream).text()).trim().split("\n").pop() ?? "";
    throw new Error(`exit status ${code}${err ? `: ${err}` : ""}`);
  }
}

const O_PATH = 0o10000000;
const NAMESPACES: [string, number][] = [
  ["user", CLONE.user],
  ["ipc", CLONE.ipc],
  ["uts", CLONE.uts],
  ["net", CLONE.network],
  ["cgroup", CLONE.cgroup],
  ["time", CLONE.time],
  ["mnt", CLONE.mount],
];

/**
 * W joins the container's namespaces (the mount one last: it also makes the
 * container's root W's) and execs the hook from an fd opened before (in the
 * container's root, or nsbox's for runtimePath): fd 3, so
 * that a #! script's interpreter can open it as /dev/fd/3. stdout is
 * discarded, stderr is nsbox's.
 */
async function runHookInContainer(h: Hook, state: object, pid: number, runtimePath: boolean): Promise<void> {
  const fds: number[] = [];
  const own = (fd: number) => {
    fds.push(fd);
    return fd;
  };
  try {
    let exe: number;
    try {
      exe = own(openSync(runtimePath ? h.path : `/proc/${pid}/root${h.path}`, O_PATH));
    } catch (e) {
      throw new Error(`cannot open it${runtimePath ? "" : " in the container"}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const w: Op[] = [];
    for (const [t, flag] of NAMESPACES) {
      const path = `/proc/${pid}/ns/${t}`;
      try {
        if (readlinkSync(path) === readlinkSync(`/proc/self/ns/${t}`)) continue; // shared with us (and our own user ns cannot be joined)
        w.push({ code: W.SETNS, fields: [own(openSync(path, "r")), flag], what: `join the container's ${t} namespace` });
      } catch {
        throw new Error("the container's process is gone");
      }
    }
    const [inR, inW] = makePipe();
    own(inR);
    own(inW);
    const devnull = own(openSync("/dev/null", "w"));
    const args = h.args?.length ? h.args : [h.path];
    w.push({ code: W.EXEC, fields: [3, [inR, devnull, 2, exe], args, h.env ?? []], what: "run the hook" });
    // (W clones no C: its program is never run, but may not be empty for the FFI)
    const s = spawnProcess(w, [{ code: C.SETSID, fields: [], what: "unused" }]);
    own(s.syncFd);
    own(s.statusFd);
    // W reports a failed setns on its status pipe; the pipe closes at its exec
    const r = readChildPid(s);
    try {
      writeSync(inW, JSON.stringify(state));
    } catch {
      // a hook need not read its stdin (see runHook)
    }
    closeFd(inW);
    fds.splice(fds.indexOf(inW), 1);
    const deadline = h.timeout ? Date.now() + h.timeout * 1000 : Number.POSITIVE_INFINITY;
    for (;;) {
      const st = waitPid(s.wpid, true);
      if (st.pid === s.wpid) {
        if (r < 0) throw new Error(`cannot enter the container: ${strerror(-r).toLowerCase()}`);
        const code = exitCodeOf(st.status);
        if (code !== 0) throw new Error(`exit status ${code}`);
        return;
      }
      if (st.pid < 0) throw new Error("lost track of it");
      if (Date.now() > deadline) {
        process.kill(s.wpid, "SIGKILL");
        waitPid(s.wpid);
        throw new Error(`timed out after ${h.timeout}s`);
      }
      await Bun.sleep(2);
    }
  } finally {
    for (const fd of fds) closeFd(fd);
  }
}

/**
 * The stop in the container's program where nsbox runs the createContainer
 * hooks: after the mounts, before pivot_root (or the chroot of a container
 * without a mount namespace of its own). Without a user namespace the program
 * sends READY before its mounts and waits for GO after pivot_root (nsbox joins
 * the cgroup meanwhile): that wait moves to before the stop, so that the GOs
 * arrive in order (the one for the set-up, then the one for the hooks).
 */
export function hookSyncPoint(c: Op[]): void {
  const at = c.findIndex((op) => op.code === C.PIVOT || op.code === C.MOVEROOT || op.code === C.CHROOT);
  const first = c.findIndex((op) => op.code === C.SYNC);
  if (at < 0 || first < 0 || first > at) throw new Error("internal error: the container's program has no place for the createContainer hooks");
  const stop: Op[] = [];
  const [sendsReady, waitsGo] = (c[first] as Op).fields as [number, number];
  if (sendsReady && !waitsGo) {
    const wait = c.findIndex((op, i) => i > first && op.code === C.SYNC && op.fields[0] === 0 && op.fields[1] === 1);
    if (wait < at) throw new Error("internal error: the container's program waits for nsbox before its mounts end");
    stop.push(...c.splice(wait, 1));
  }
  stop.push({ code: C.SYNC, fields: [1, 1], what: "wait for the createContainer hooks" });
  c.splice(at, 0, ...stop);
}
