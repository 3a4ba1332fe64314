/**
 * Small readers of /proc for tests that watch processes (stop points, kills):
 * a file's text or "" when it is gone, a process's state letter and start time.
 */
import { readFileSync } from "node:fs";

/** The file's text, or "" when it cannot be read (a process that went). */
export function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Field n of /proc/PID/stat counted from the state (the field after the command's ")") as 0; undefined when gone. */
function statField(pid: number, n: number): string | undefined {
  const stat = readOr(`/proc/${pid}/stat`);
  return stat ? stat.slice(stat.lastIndexOf(")") + 2).split(" ")[n] : undefined;
}

/** The state letter of /proc/PID/stat (R, S, T, Z...; "" when gone). */
export function stateLetter(pid: number): string {
  return statField(pid, 0) ?? "";
}

/** The start time of a process (field 22 of its stat: with the pid, it names one process); undefined once reaped. */
export function startTimeOf(pid: number): string | undefined {
  return statField(pid, 19);
}
