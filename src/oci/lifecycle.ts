/**
 * The OCI verbs after create: start, state, kill, delete, list, pause, resume.
 * Each reads the truth from the kernel (see state.ts) and holds the container's
 * lock while it changes anything.
 */

import { openCgroup } from "../cgroup/index.ts";
import { closeSync, constants, openSync, readSync, unlinkSync, writeFileSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { alive } from "../state/proc.ts";
import { ConfigError } from "./config.ts";
import { runHooks } from "./hooks.ts";
import {
  fifoPath,
  listRecords,
  mustRecord,
  type OciRecord,
  procOf,
  readRecord,
  removeDir,
  removeFreezer,
  stateJson,
  statusOf,
  withLock,
  writeRecord,
} from "./state.ts";

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

export async function ociStart(id: string): Promise<void> {
  const r = mustRecord(id);
  await withLock(id, async () => {
    const status = statusOf(r);
    if (status !== "created") throw new ConfigError(`cannot start container ${id}: it is ${status}, not created`);
    try {
      await runHooks(r.hooks, "startContainer", stateJson(r, "created"), { pid: r.pid });
    } catch (e) {
      // the spec: a failed startContainer hook stops the container
      try {
        process.kill(r.pid, "SIGKILL");
      } catch {
        // gone
      }
      throw e;
    }
    // Non-blocking: if the process died meanwhile, nobody would ever write.
    const fd = openSync(fifoPath(id), constants.O_RDONLY | constants.O_NONBLOCK);
    // From this open on the process goes (its open for writing returns, its byte
    // needs no reader): the fifo goes now, so that state says running even if
    // this nsbox is killed before it reads the byte.
    unlinkSync(fifoPath(id));
    try {
      const b = Buffer.alloc(1);
      const readByte = (): number => {
        try {
          return readSync(fd, b, 0, 1, null);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
          return 0;
        }
      };
      let got = 0;
      for (let i = 0; i < 5000 && got === 0; i++) {
        got = readByte();
        if (got === 0) {
          // Between that read and this look, the process may have written its
          // byte, exec'd its command and exited (`sh -c "exit 7"` under load):
          // it started, and the byte, still in the fifo, says so. Found gone,
          // it failed only if no byte came (a podman run once exited 126 here).
          if (!alive(procOf(r))) {
            got = readByte();
            if (got === 0) throw new ConfigError(`cannot start container ${id}: its process is gone`);
          } else sleep(1);
        }
      }
      if (got === 0) throw new ConfigError(`cannot start container ${id}: its process did not answer`);
    } finally {
      closeSync(fd);
    }
  });
  await runHooks(r.hooks, "poststart", stateJson(r, "running"));
}

export function ociState(id: string): string {
  return JSON.stringify(stateJson(mustRecord(id)), null, 2);
}

/** "TERM", "SIGTERM", "term", "15" -> 15. */
export function signalNumber(text: string | undefined): number {
  if (!text) return 15; // SIGTERM
  // node:os's table, loaded by kill alone
  const osc = (require("node:os") as typeof import("node:os")).constants;
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n >= 1 && n <= 64) return n;
  }
  const name = text.toUpperCase().startsWith("SIG") ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
  const n = (osc.signals as Record<string, number>)[name];
  if (n === undefined) throw new ConfigError(`unknown signal ${JSON.stringify(text)}: give a name (TERM, KILL, HUP...) or a number`);
  return n;
}

export async function ociKill(id: string, sig: number, all: boolean): Promise<void> {
  const r = mustRecord(id);
  const status = statusOf(r);
  // "container not running" is what containerd's shim and podman look for (runc's words)
  // (--all of a stopped one signals what is left in its cgroup, as runc: containerd's clean-up does that)
  if (status === "stopped" && !all) throw new ConfigError(`cannot signal container ${id}: container not running`);
  if (all && r.cgroup) {
    for (const pid of openCgroup(r.cgroup).pids()) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone meanwhile
      }
    }
    return;
  }
  try {
    process.kill(r.pid, sig);
  } catch (e) {
    throw new ConfigError(`cannot signal container ${id}: ${(e as Error).message}`);
  }
}

export async function ociDelete(id: string, force: boolean): Promise<void> {
  const r = readRecord(id);
  if (!r) {
    if (force) return; // as runc: nothing to delete is not an error with --force
    mustRecord(id);
    return;
  }
  await withLock(id, async () => {
    const status = statusOf(r);
    if ((status === "running" || status === "paused") && !force)
      throw new ConfigError(`cannot delete container ${id}: it is ${status}; stop it first or use delete --force`);
    if (status !== "stopped" && r.pid) {
      if (r.paused && r.cgroup) freeze(r, false);
      try {
        process.kill(r.pid, "SIGKILL");
      } catch {
        // gone
      }
      for (let i = 0; i < 1000 && alive(procOf(r)); i++) sleep(5);
    }
    if (r.cgroup) await openCgroup(r.cgroup).remove();
    removeFreezer(r);
  });
  removeDir(id);
  await runHooks(r.hooks, "poststop", stateJson(r, "stopped"));
}

export function ociList(format: string): string {
  const rs = listRecords();
  if (format === "json")
    return JSON.stringify(
      rs.map((r) => {
        const st = stateJson(r);
        return { ociVersion: r.ociVersion, id: r.id, pid: st.pid, status: st.status, bundle: r.bundle, rootfs: r.rootfs, created: r.created, owner: "root" };
      }),
    );
  const rows = [
    ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
    ...rs.map((r) => [r.id, String(stateJson(r).pid), statusOf(r), r.bundle, r.created, "root"]),
  ];
  const w = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? "").length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((c, i) => c.padEnd((w[i] ?? 0) + 3))
        .join("")
        .trimEnd(),
    )
    .join("\n");
}

/** The freezer of the container's cgroup: cgroup.freeze on v2, freezer.state on v1. */
function freeze(r: OciRecord, on: boolean) {
  const cg = r.cgroup;
  if (!cg) throw new ConfigError(`container ${r.id} has no cgroup to freeze`);
  if (cg.version === 2) {
    writeFileSync(join(cg.paths.unified as string, "cgroup.freeze"), on ? "1" : "0");
    return;
  }
  const dir = cg.paths.freezer ?? r.freezer;
  if (!dir) throw new ConfigError(`container ${r.id}'s cgroup has no freezer (the v1 freezer controller is not mounted)`);
  writeFileSync(join(dir, "freezer.state"), on ? "FROZEN" : "THAWED");
}

export async function ociPause(id: string, on: boolean): Promise<void> {
  const r = mustRecord(id);
  await withLock(id, async () => {
    const status = statusOf(r);
    if (on && status !== "running") throw new ConfigError(`cannot pause container ${id}: it is ${status}`);
    if (!on && status !== "paused") throw new ConfigError(`cannot resume container ${id}: it is ${status}, not paused`);
    freeze(r, on);
    r.paused = on;
    writeRecord(r);
  });
}

export function ociPids(id: string): number[] {
  const r = mustRecord(id);
  if (r.cgroup) return openCgroup(r.cgroup).pids();
  return alive(procOf(r)) ? [r.pid] : [];
}
