/**
 * OCI run: create + start. In the foreground nsbox is the process's parent
 * (a subreaper, so the process is reparented to it when W exits): it forwards
 * signals, waits, deletes the container and exits with its code, as runc run.
 */
import { exitCodeOf, waitPid } from "../native/spawn.ts";
import { type CreateOptions, ociCreate } from "./create.ts";
import { ociDelete, ociStart } from "./lifecycle.ts";

const FORWARD = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

export async function ociRun(o: CreateOptions, detach: boolean): Promise<number> {
  const r = await ociCreate({ ...o, foreground: !detach });
  try {
    await ociStart(o.id);
  } catch (e) {
    await ociDelete(o.id, true);
    throw e;
  }
  if (detach) return 0;
  const forward = (sig: NodeJS.Signals) => {
    try {
      process.kill(r.pid, sig);
    } catch {
      // gone
    }
  };
  for (const s of FORWARD) process.on(s, forward);
  let status = 0;
  for (;;) {
    const w = waitPid(r.pid, true);
    if (w.pid === r.pid) {
      status = w.status;
      break;
    }
    if (w.pid < 0) break;
    await Bun.sleep(5);
  }
  for (const s of FORWARD) process.off(s, forward);
  await ociDelete(o.id, true);
  return exitCodeOf(status);
}
