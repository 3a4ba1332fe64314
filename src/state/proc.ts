/**
 * Is a process still the one we started? A pid alone can be reused; the pid and
 * its start time (field 22 of /proc/PID/stat, in clock ticks since boot) together
 * name one process for the life of the machine.
 */
import { readFileSync } from "../native/fs.ts";

export interface ProcId {
  pid: number;
  start: string;
}

export function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // the command name (field 2) may hold spaces and parentheses: skip past the last ")"
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19];
  } catch {
    return undefined;
  }
}

export function procId(pid: number): ProcId | undefined {
  const start = startTime(pid);
  return start === undefined ? undefined : { pid, start };
}

/** True while that very process exists (a zombie counts as gone). */
export function alive(p: ProcId | undefined): boolean {
  if (!p?.pid) return false;
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19] === p.start && rest[0] !== "Z" && rest[0] !== "X";
  } catch {
    return false;
  }
}

/**
 * The wait status of that process if it is a zombie (field 52 of its stat,
 * exit_code, as waitpid would give it), readable by anyone until its parent
 * reaps it; undefined otherwise.
 */
export function zombieStatus(p: ProcId | undefined): number | undefined {
  if (!p?.pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[19] !== p.start || rest[0] !== "Z" || rest[49] === undefined) return undefined;
    return Number(rest[49]);
  } catch {
    return undefined;
  }
}

const PF_EXITING = 0x4;

/**
 * True once that process has begun to exit (PF_EXITING in field 9 of its stat),
 * or is gone. A dying PID 1 stays in D state, not yet a zombie, until every
 * process of its pid namespace is reaped: alive() still says yes then.
 */
export function exiting(p: ProcId | undefined): boolean {
  if (!alive(p)) return true;
  try {
    const stat = readFileSync(`/proc/${p?.pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[6]) & PF_EXITING) !== 0;
  } catch {
    return true;
  }
}

export const self = (): ProcId => procId(process.pid) as ProcId;
