/**
 * OCI run: create + start. In the foreground nsbox is the process's parent
 * (a subreaper, so the process is reparented to it when W exits): it relays
 * the terminal (process.terminal without --console-socket), forwards signals,
 * waits, deletes the container and exits with its code, as runc run.
 */
import { Foreground } from "../container/attached.ts";
import { closeFd, exitCodeOf, setWinsize } from "../native/spawn.ts";
import { hostWinsize } from "../tty/relay.ts";
import { type CreateOptions, ociCreate } from "./create.ts";
import { ociDelete, ociStart } from "./lifecycle.ts";

export async function ociRun(o: CreateOptions, detach: boolean): Promise<number> {
  if (detach) {
    await ociCreate(o);
    await startOrDelete(o.id);
    return 0;
  }
  const fg = new Foreground();
  let created = false;
  let master: number | undefined;
  try {
    const c = await ociCreate({ ...o, foreground: true });
    created = true;
    master = c.master;
    fg.track(c.record.pid);
    // the terminal's size is ours unless config.json says otherwise
    const ws = hostWinsize();
    if (master !== undefined && ws && !c.consoleSize) setWinsize(master, ws.rows, ws.cols);
    await startOrDelete(o.id);
    fg.attach(master, true);
    return exitCodeOf(await fg.wait());
  } finally {
    await fg.dispose();
    if (master !== undefined) closeFd(master);
    if (created) await ociDelete(o.id, true);
  }
}

async function startOrDelete(id: string) {
  try {
    await ociStart(id);
  } catch (e) {
    await ociDelete(id, true);
    throw e;
  }
}
