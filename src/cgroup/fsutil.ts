/** Small file helpers for cgroupfs, with errors that name the file. */
import { awayResult, writeAway } from "../native/away.ts";
import { readFileSync, rmdirSync, writeFileSync } from "../native/fs.ts";
import { keyedNumber } from "../text.ts";
import { CgroupError } from "./cgroup.ts";

export function readCg(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

export function writeCg(path: string, value: string, what: string): void {
  try {
    writeFileSync(path, value);
  } catch (e) {
    throw cgWriteError(e, path, value, what);
  }
}

/** A refused cgroup file write, in words: what was being set, the file, and why. */
export function cgWriteError(e: unknown, path: string, value: string, what: string): CgroupError {
  const err = e as NodeJS.ErrnoException;
  const why =
    err.code === "EBUSY"
      ? "busy (cgroup v2 allows no processes in a cgroup that delegates controllers)"
      : err.code === "EINVAL"
        ? "the kernel refused the value"
        : err.code === "ENOENT"
          ? "the file does not exist (controller missing or not enabled)"
          : err.code === "EACCES" || err.code === "EPERM"
            ? "permission denied (cgroup not delegated to this user)"
            : (err.message ?? String(e));
  return new CgroupError(`cannot set ${what}: writing "${value.trim()}" to ${path}: ${why}`);
}

/** writeCg by a child process (src/native/away.ts), while nsbox's thread goes on; the same write here if none can start. */
export async function writeCgAsync(path: string, value: string, what: string): Promise<void> {
  const pid = writeAway(path, value);
  // a refusal: the same write again, here, for the same error in words
  if (pid === undefined || (await awayResult(pid)) !== 0) writeCg(path, value, what);
}

/** The value of `key N` in a flat keyed file (memory.events, cpu.stat...). */
export function keyed(text: string | undefined, key: string): number | undefined {
  if (!text) return undefined;
  return keyedNumber(text, key);
}

export function numberOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (t === "max") return Number.POSITIVE_INFINITY;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** SIGKILL to each pid (those already gone are skipped). */
export function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

export function pidsIn(dir: string): number[] {
  return (readCg(`${dir}/cgroup.procs`) ?? "").split("\n").filter(Boolean).map(Number);
}

/**
 * Removes a cgroup dir once the kernel has let its last process go (exiting
 * processes linger for a moment after SIGKILL). EBUSY is retried up to ~2 s.
 */
export async function rmdirCg(dir: string, kill: () => void): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY" || i >= 200) throw new CgroupError(`cannot remove cgroup ${dir}: ${code}`);
      if (i % 10 === 0) kill();
      await Bun.sleep(10);
    }
  }
}
