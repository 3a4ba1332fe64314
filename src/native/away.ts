/**
 * Small writes done by a child process that shares nsbox's memory, so that
 * nsbox's thread goes on while the kernel makes the write wait (csrc/write_away.c):
 * the cgroup move's warm-up and the container's join on cgroup v1, where a write
 * to cgroup.procs may first wait for an RCU grace period. node:fs's asynchronous
 * writeFile did this on Bun's thread pool; nsbox's start no longer loads node:fs
 * (see src/native/fs.ts).
 */
import { call, F } from "./helper.ts";
import { utf8Encoder } from "./syscall.ts";

/** Starts writing text to path; returns the writer's pid, or undefined when none could start (then write it yourself). */
export function writeAway(path: string, text: string): number | undefined {
  const p = utf8Encoder().encode(path);
  const t = utf8Encoder().encode(text);
  const pid = call(F.AWAY_START, p, p.length, t, t.length);
  return pid > 0 ? pid : undefined;
}

/** The write's errno (0: written) once it is done; undefined while it is under way (nowait). */
export function awayDone(pid: number, nowait: boolean): number | undefined {
  const r = call(F.AWAY_DONE, pid, nowait ? 1 : 0);
  if (r === -1) return undefined;
  return r < 0 ? -r : r;
}

/**
 * Settles with the write's errno (0: written). Polled between the event loop's
 * turns: it costs nothing while nsbox's thread has other work, so make one only
 * for a write that is awaited.
 */
export function awayResult(pid: number): Promise<number> {
  return new Promise((resolve) => {
    const poll = () => {
      const r = awayDone(pid, true);
      if (r === undefined) setImmediate(poll);
      else resolve(r);
    };
    poll();
  });
}
