/**
 * Is a process still the one we started? A pid alone can be reused; the pid and
 * its start time (field 22 of /proc/PID/stat, in clock ticks since boot) together
 * name one process for the life of the machine.
 */
import { readTextIfThere } from "../native/fs.ts";

export interface ProcId {
  pid: number;
  start: string;
}

/**
 * The fields of /proc/PID/stat after the command name (field 2, which may hold
 * spaces and parentheses: skipped past the last ")"), so that rest[0] is field 3;
 * undefined when the process is gone (a gone process is the usual answer here:
 * no Error is made for it, see readTextIfThere).
 */
function statFields(pid: number | undefined): string[] | undefined {
  let stat: string | undefined;
  try {
    stat = readTextIfThere(`/proc/${pid}/stat`);
  } catch {
    return undefined; // it went between the open and the read
  }
  return stat === undefined ? undefined : stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

export function startTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

export function procId(pid: number): ProcId | undefined {
  const start = startTime(pid);
  return start === undefined ? undefined : { pid, start };
}

/** True while that very process exists (a zombie counts as gone). */
export function alive(p: ProcId | undefined): boolean {
  if (!p?.pid) return false;
  const rest = statFields(p.pid);
  return rest !== undefined && rest[19] === p.start && rest[0] !== "Z" && rest[0] !== "X";
}

/** The parent's pid of that very process (a zombie too); undefined once it is reaped. */
export function parentPid(p: ProcId | undefined): number | undefined {
  if (!p?.pid) return undefined;
  const rest = statFields(p.pid);
  return rest !== undefined && rest[19] === p.start ? Number(rest[1]) : undefined;
}

/**
 * The wait status of that process if it is a zombie (field 52 of its stat,
 * exit_code, as waitpid would give it), readable by anyone until its parent
 * reaps it; undefined otherwise.
 */
export function zombieStatus(p: ProcId | undefined): number | undefined {
  if (!p?.pid) return undefined;
  const rest = statFields(p.pid);
  if (rest === undefined || rest[19] !== p.start || rest[0] !== "Z" || rest[49] === undefined) return undefined;
  return Number(rest[49]);
}

const PF_EXITING = 0x4;

/**
 * True once that process has begun to exit (PF_EXITING in field 9 of its stat),
 * or is gone. A dying PID 1 stays in D state, not yet a zombie, until every
 * process of its pid namespace is reaped: alive() still says yes then.
 */
export function exiting(p: ProcId | undefined): boolean {
  if (!alive(p)) return true;
  const rest = statFields(p?.pid);
  return rest === undefined || (Number(rest[6]) & PF_EXITING) !== 0;
}

export const self = (): ProcId => procId(process.pid) as ProcId;
