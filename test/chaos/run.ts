/** Small pieces shared by the chaos files: describing a command's result, reading a process's cgroups. */
import { readFileSync } from "node:fs";
import { pidAlive } from "../helpers/lifecycle.ts";
import type { RunResult } from "../helpers/nsbox.ts";

/** "nsbox ARGS -> exit N; stdout ...; stderr ..." with long values shortened (a fuzzed argv can be 100 kB). */
export function show(args: string[], r: RunResult): string {
  const short = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}…(${s.length} chars)` : s);
  return `nsbox ${args.map((a) => JSON.stringify(short(a))).join(" ")} -> exit ${r.code}${r.signal ? ` (${r.signal})` : ""}${r.timedOut ? " (timed out)" : ""}; stdout ${JSON.stringify(short(r.stdout))}; stderr ${JSON.stringify(short(r.rawStderr))}`;
}

/** /proc/PID/cgroup ("" when the process is gone). */
export function cgroupOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, "utf8");
  } catch {
    return "";
  }
}

/** The network namespace's routing trie of pid ("" when gone). */
export function fibTrieOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/net/fib_trie`, "utf8");
  } catch {
    return "";
  }
}

/**
 * Whether pid is the live PID 1 of container id, as the kernel shows it: in the
 * container's cgroup, or a namespace's PID 1 that is exiting (the kernel takes
 * an exiting task out of its cgroup, then PID 1 waits until every other process
 * of its namespace is reaped, possibly by the host's init: it is not gone yet,
 * and nsbox rightly still calls the container running).
 */
export function isInitOf(pid: number, id: string): boolean {
  if (!(pid > 0) || !pidAlive(pid)) return false;
  if (cgroupOf(pid).includes(`nsbox-${id}`)) return true;
  let status = "";
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return false;
  }
  const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [];
  return nspid.length > 1 && nspid[nspid.length - 1] === "1" && !cgroupOf(pid).includes("nsbox-");
}
