/**
 * The OCI runtime's state directory (--root, as runc's): ROOT/ID/ holds
 * state.json (what create recorded), exec.fifo (exists from create until start:
 * the process waits on it) and a lock file. The status is never stored: it is
 * read from the kernel each time (the process, by pid and start time; the fifo;
 * the freezer), so it is right also after the process died with no nsbox running.
 */

import type { CgroupRecord } from "../cgroup/index.ts";
import { flock, LOCK_EX, LOCK_UN } from "../native/flock.ts";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { alive, type ProcId } from "../state/proc.ts";
import type { Hooks } from "./config.ts";
import { DEFAULT_OCI_ROOT } from "./dispatch.ts";

export { DEFAULT_OCI_ROOT };

import { ConfigError } from "./config.ts";

let rootDir = DEFAULT_OCI_ROOT;
export const setOciRoot = (dir: string) => {
  rootDir = dir;
};
export const ociRoot = () => rootDir;

export interface OciRecord {
  ociVersion: string;
  id: string;
  pid: number;
  /** the process's start time, so that a reused pid is not taken for it */
  start: string;
  bundle: string;
  rootfs: string;
  annotations: Record<string, string>;
  created: string;
  hooks: Hooks;
  cgroup?: CgroupRecord;
  /** cgroup v1: the freezer cgroup nsbox made (its other cgroups have none) */
  freezer?: string;
  /** the freezer levels nsbox made for it (removed with it, deepest first) */
  freezerCreated?: string[];
  /** the freezer state nsbox set (pause/resume) */
  paused?: boolean;
}

export type OciStatus = "creating" | "created" | "running" | "paused" | "stopped";

/** runc's rule for container ids. */
export function checkId(id: string | undefined): string {
  if (!id) throw new ConfigError("a container id is required");
  if (!/^[\w+\-.]+$/.test(id) || id === "." || id === "..")
    throw new ConfigError(`invalid container id ${JSON.stringify(id)}: use letters, digits, _ + - and .`);
  return id;
}

export const ctrDir = (id: string) => join(rootDir, id);
export const fifoPath = (id: string) => join(ctrDir(id), "exec.fifo");

/** Makes ROOT/ID; false when it exists (an id in use). */
export function claimDir(id: string): boolean {
  mkdirSync(rootDir, { recursive: true, mode: 0o711 });
  try {
    mkdirSync(ctrDir(id), { mode: 0o711 });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
}

export function writeRecord(r: OciRecord): void {
  const tmp = join(ctrDir(r.id), "state.json.tmp");
  writeFileSync(tmp, JSON.stringify(r));
  renameSync(tmp, join(ctrDir(r.id), "state.json"));
}

export function readRecord(id: string): OciRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(ctrDir(id), "state.json"), "utf8")) as OciRecord;
  } catch {
    return undefined;
  }
}

export function mustRecord(id: string): OciRecord {
  checkId(id);
  const r = readRecord(id);
  if (!r) throw new ConfigError(`container ${JSON.stringify(id)} does not exist`);
  return r;
}

export function listRecords(): OciRecord[] {
  let names: string[] = [];
  try {
    names = readdirSync(rootDir);
  } catch {
    return [];
  }
  return names.map(readRecord).filter((r): r is OciRecord => !!r);
}

/** The v1 freezer cgroup, once its processes are gone (a few tries: the kernel lets go of them late). */
export function removeFreezer(r: OciRecord): void {
  if (!r.freezer) return;
  const dirs = [r.freezer, ...[...(r.freezerCreated ?? [])].reverse().filter((d) => d !== r.freezer)];
  for (const [n, d] of dirs.entries()) {
    // the leaf: a few tries, the kernel lets go of its processes late; the levels above: once
    for (let i = 0; i < (n === 0 ? 200 : 1); i++) {
      try {
        rmdirSync(d);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") break;
        if (n > 0) return; // busy: another container is below
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      }
    }
  }
}

export function removeDir(id: string): void {
  rmSync(ctrDir(id), { recursive: true, force: true });
}

export const procOf = (r: OciRecord): ProcId => ({ pid: r.pid, start: r.start });

export function statusOf(r: OciRecord): OciStatus {
  if (!r.pid) return "creating";
  if (!alive(procOf(r))) return "stopped";
  if (existsSync(fifoPath(r.id))) return "created";
  return r.paused ? "paused" : "running";
}

/** The runtime-spec state document. */
export function stateJson(r: OciRecord, status: OciStatus = statusOf(r)) {
  return {
    ociVersion: r.ociVersion,
    id: r.id,
    status,
    pid: status === "stopped" ? 0 : r.pid,
    bundle: r.bundle,
    rootfs: r.rootfs,
    created: r.created,
    annotations: r.annotations,
  };
}

/** Runs fn holding the container's lock (create, start, delete, pause... of one id never interleave). */
export async function withLock<T>(id: string, fn: () => Promise<T> | T): Promise<T> {
  let fd: number;
  try {
    fd = openSync(join(ctrDir(id), "lock"), "a");
  } catch {
    throw new ConfigError(`container ${JSON.stringify(id)} does not exist`);
  }
  flock(fd, LOCK_EX);
  try {
    return await fn();
  } finally {
    flock(fd, LOCK_UN);
    closeSync(fd);
  }
}
