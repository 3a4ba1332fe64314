/**
 * What a foreground runtime holds while its container runs (issue 14.5): the PSS
 * (proportional set size: shared pages divided among their users, so twenty
 * waiting runs add up to twenty times this) of the process that the caller
 * started, e.g. `nsbox run ROOTFS sleep 30` or `crun run -b BUNDLE ID`, measured
 * once its container runs. The container's own processes are not counted.
 *
 *   import { waitingPss } from "./pss.ts";
 *   const r = await waitingPss(wrapArgv(w, [nsbox, "run", "--net", "none", rootfs, "sleep", "30"]));
 *   r.pssKiB, r.comm   // e.g. 20, "nsbox-fg"
 *
 * or from a shell: bun bench/pss.ts [--settle MS] [--] ARGV...
 *
 * ARGV may be wrapped (unshare ... sh -c 'exec ...', as bench/lib.ts's
 * wrapArgv does): exec keeps the pid, so the pid measured is the runtime's.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Pss of one process in KiB (from /proc/PID/smaps_rollup); 0 when it is gone. */
export function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

export interface WaitingPss {
  /** Pss of the runtime's process, KiB */
  pssKiB: number;
  /** its name then (nsbox-fg once nsbox has handed the wait to its shim) */
  comm: string;
  pid: number;
}

/**
 * Starts argv (a foreground run of a long command, e.g. sleep 30), waits settleMs
 * for the container to run, reads the Pss of argv's process, then SIGKILLs the
 * container (the runtime's children) and waits for the runtime to clean up and exit.
 */
export async function waitingPss(argv: string[], opts: { env?: Record<string, string | undefined>; settleMs?: number } = {}): Promise<WaitingPss> {
  const p = Bun.spawn(argv, { env: opts.env ?? process.env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  try {
    await Bun.sleep(opts.settleMs ?? 1500);
    if (p.exitCode !== null) throw new Error(`${argv.join(" ")} exited (${p.exitCode}) before it was measured: ${await new Response(p.stderr).text()}`);
    const result = { pssKiB: pssKiB(p.pid), comm: comm(p.pid), pid: p.pid };
    return result;
  } finally {
    for (const c of childrenOf(p.pid)) {
      try {
        process.kill(c, "SIGKILL");
      } catch {
        // gone
      }
    }
    await Promise.race([p.exited, Bun.sleep(10000)]);
    if (p.exitCode === null) p.kill("SIGKILL");
  }
}

if (import.meta.main) {
  let args = process.argv.slice(2);
  const settle = args[0] === "--settle" ? Number(args[1]) : undefined;
  if (settle !== undefined) args = args.slice(2);
  if (args[0] === "--") args = args.slice(1); // (bun may have taken it already)
  if (!args.length) {
    console.error("usage: bun bench/pss.ts [--settle MS] [--] ARGV...   (ARGV: a foreground run of a long command)");
    process.exit(2);
  }
  const r = await waitingPss(args, { settleMs: settle });
  console.log(`${(r.pssKiB / 1024).toFixed(2)} MiB Pss (${r.pssKiB} KiB), process ${r.pid} (${r.comm})`);
}
