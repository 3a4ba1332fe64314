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

/** What underReaplessPid1 saw: the command's result, and every other process left in its pid namespace. */
export interface Pid1Result {
  code: number;
  out: string;
  err: string;
  /** "COMM STATE" of each process but PID 1, once none of them is alive (or after a second) */
  left: string[];
}

/**
 * Runs argv as the only child of the PID 1 of a pid namespace made for the
 * call: a Bun that waits for argv's pid alone and reaps nothing else, so that a
 * process argv started and did not wait for stays in the list (a zombie, once
 * dead). The list is taken when no process but PID 1 is alive, or after a second.
 */
export function underReaplessPid1(argv: string[], env: Record<string, string>): Pid1Result {
  const pid1 = `
    const { readdirSync, readFileSync } = require("node:fs");
    const r = Bun.spawnSync(process.argv.slice(1), { stdout: "pipe", stderr: "pipe" });
    const others = () => {
      const out = [];
      for (const e of readdirSync("/proc")) {
        if (!/^[0-9]+$/.test(e) || e === "1") continue;
        try {
          const stat = readFileSync("/proc/" + e + "/stat", "utf8");
          out.push(stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) + " " + stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]);
        } catch {}
      }
      return out;
    };
    let left = others();
    for (let i = 0; i < 100 && left.some((p) => !p.endsWith(" Z")); i++) { Bun.sleepSync(10); left = others(); }
    console.log(JSON.stringify({ code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString(), left }));
  `;
  const r = Bun.spawnSync(["unshare", "--pid", "--fork", "--mount-proc", process.execPath, "-e", pid1, ...argv], { env, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`the pid namespace's PID 1 failed: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString()) as Pid1Result;
}
