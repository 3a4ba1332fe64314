/** Small pieces shared by the chaos files: describing a command's result, reading a process's cgroups. */
import { readFileSync } from "node:fs";
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
