/**
 * Small readers of /proc for tests that watch processes (stop points, kills):
 * a file's text or "" when it is gone, and a process's state letter.
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

/** The state letter of /proc/PID/stat (R, S, T, Z...; "" when gone): the field after the command's ")". */
export function stateLetter(pid: number): string {
  const stat = readOr(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? "";
}
