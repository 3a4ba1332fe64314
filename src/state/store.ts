/**
 * The state of containers on disk, safe for concurrent nsbox commands and for an
 * nsbox killed at any moment:
 *
 *   <state>/<id>/config.json  what the container is (written once, at creation)
 *   <state>/<id>/state.json   where it is in its life (rewritten at each step)
 *   <state>/<id>/exit         its exit status, written by whoever waited for it (a
 *                             foreground nsbox: only for a `nsbox wait` then waiting)
 *   <state>/<id>/lock         flock: one command at a time changes a container
 *   <state>/<id>/ctr.log      logs of a detached container (ctr.log.1: older)
 *   <state>/names/<name>      symlink -> id: names are unique by construction
 *
 * Every file is written to a temporary name and renamed, so a reader sees the old
 * or the new version, never half. A container directory appears with its config
 * in it (mkdir of a temp dir, then rename) and loses it first when it goes, so a
 * directory without config.json is a removal under way or cut short.
 */

import type { CgroupRecord } from "../cgroup/cgroup.ts";
import type { ContainerSpec } from "../config/spec.ts";
import { fail } from "../errors.ts";
import { filter } from "../list.ts";
import { removeAfterExit } from "../native/exit.ts";
import { flock, LOCK_EX, LOCK_NB, LOCK_UN } from "../native/flock.ts";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkIfThere,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { isHex } from "../text.ts";
import { roots } from "./paths.ts";
import type { ProcId } from "./proc.ts";
import { randomHex } from "./random.ts";

/** What a container is; fixed at creation. */
export interface ContainerConfig {
  id: string;
  name?: string;
  /** ISO time */
  created: string;
  /** ROOTFS as the user gave it */
  rootfs: string;
  spec: ContainerSpec;
  detached: boolean;
  /** remove everything when it exits (--rm, and every foreground run) */
  autoRemove: boolean;
  dataDir: string;
  /** cgroup parents per hierarchy where nsbox-<id> is created (known before creating it) */
  cgroup?: CgroupRecord;
  /** networking (see net/) */
  network?: Record<string, unknown>;
  pod?: string;
}

export type Phase = "creating" | "running" | "exited";

/** Where a container is in its life. */
export interface ContainerState {
  phase: Phase;
  /** the nsbox process that is creating it (phase "creating") or waits for it (foreground) */
  owner?: ProcId;
  /** the container's PID 1, as the host sees it */
  init?: ProcId;
  /** the monitor of a detached container */
  monitor?: ProcId;
  startedAt?: string;
  /** true once the host-side resources (cgroup, layers, network) are released */
  released?: boolean;
  exit?: ExitRecord;
}

export interface ExitRecord {
  /** the wait status as the kernel gave it; -1 when unknown */
  waitStatus: number;
  code: number;
  finishedAt: string;
  oomKilled?: boolean;
  /** why the code is what it is, when nsbox had to infer it */
  note?: string;
}

export const stateRoot = () => roots().state;
export const containerDir = (id: string) => join(stateRoot(), id);
const namesDir = () => join(stateRoot(), "names");

export function ensureStateRoot(): void {
  mkdirSync(namesDir(), { recursive: true, mode: 0o711 });
}

export function writeAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}-${randomHex(4)}`;
  writeFileSync(tmp, data, { mode: 0o644 });
  renameSync(tmp, path);
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

/** Creates the container's directory with its config and first state, atomically. */
export function createContainerDir(config: ContainerConfig, state: ContainerState): void {
  ensureStateRoot();
  const tmp = join(stateRoot(), `.tmp-${process.pid}-${randomHex(6)}`);
  mkdirSync(tmp, { mode: 0o711 });
  // compact, as runc's state.json: indented, the seccomp profile's names one per
  // line doubled it (23 kB against 11) and a start spent ~1.7 ms more on it; people
  // read a container's configuration through `nsbox inspect`
  writeFileSync(join(tmp, "config.json"), JSON.stringify(config));
  writeFileSync(join(tmp, "state.json"), JSON.stringify(state));
  writeFileSync(join(tmp, "lock"), "");
  renameSync(tmp, containerDir(config.id));
}

export function readConfig(id: string): ContainerConfig | undefined {
  return readJson<ContainerConfig>(join(containerDir(id), "config.json"));
}

export function readState(id: string): ContainerState | undefined {
  return readJson<ContainerState>(join(containerDir(id), "state.json"));
}

export function writeState(id: string, state: ContainerState): void {
  writeAtomic(join(containerDir(id), "state.json"), JSON.stringify(state));
}

export function updateConfig(config: ContainerConfig): void {
  writeAtomic(join(containerDir(config.id), "config.json"), JSON.stringify(config));
}

/** The exit file that the monitor (detached) or nsbox (foreground) writes. */
export interface ExitFile {
  waitStatus: number;
  finishedAt: string;
}

/** nsbox's own record of a foreground container's exit (a detached one's monitor writes it). */
export function writeExitFile(id: string, e: ExitFile): void {
  writeAtomic(join(containerDir(id), "exit"), JSON.stringify(e));
}

export function readExitFile(id: string): ExitFile | undefined {
  return readJson<ExitFile>(join(containerDir(id), "exit"));
}

/** Ids of every container directory. */
export function listIds(): string[] {
  try {
    return filter(readdirSync(stateRoot()), (n) => isHex(n, 64));
  } catch {
    return [];
  }
}

/** Temp dirs of creations that never finished: their creator's pid is in the name. */
export function tempDirs(): { path: string; pid: number }[] {
  try {
    return readdirSync(stateRoot())
      .filter((n) => n.startsWith(".tmp-"))
      .map((n) => ({ path: join(stateRoot(), n), pid: Number(n.split("-")[1]) }));
  } catch {
    return [];
  }
}

/** Reserves a name for id; false when another container has it. */
export function reserveName(name: string, id: string): boolean {
  ensureStateRoot();
  try {
    symlinkSync(id, join(namesDir(), name));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
}

export function releaseName(name: string, id: string): void {
  const p = join(namesDir(), name);
  try {
    if (readlinkSync(p) === id) unlinkSync(p);
  } catch {
    // already gone
  }
}

export function nameTarget(name: string): string | undefined {
  // (exec ID, inspect ID...: not a name is the usual answer, see readlinkIfThere)
  return readlinkIfThere(join(namesDir(), name));
}

/** Names whose container is gone (left by an nsbox killed between two steps). */
export function staleNames(): string[] {
  try {
    return readdirSync(namesDir()).filter((n) => {
      const id = nameTarget(n);
      return !id || !existsSync(containerDir(id));
    });
  } catch {
    return [];
  }
}

export function removeStaleName(name: string): void {
  try {
    unlinkSync(join(namesDir(), name));
  } catch {
    // gone
  }
}

/**
 * config.json goes first: with it the container is gone for every reader at
 * once (a container dir always has one, from its creation on: see
 * createContainerDir), and a dir left without it is a removal cut short, which
 * removeDoomed finishes. (A rename to a doomed name did the same for one more
 * metadata write.)
 */
export function removeContainerDir(id: string): void {
  const dir = containerDir(id);
  try {
    unlinkSync(join(dir, "config.json"));
  } catch {
    // gone already, or a removal cut short: the rest goes all the same
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * removeContainerDir for an nsbox about to exit (a foreground run's cleanup): the
 * dir renamed to .rm-<id> (gone for every reader at once), removed after the exit
 * by the exit keeper (src/native/exit.ts), or by removeDoomed if that never
 * happens.
 */
export function removeContainerDirAfterExit(id: string): void {
  if (!removeAfterExit(containerDir(id), join(stateRoot(), `.rm-${id}`))) removeContainerDir(id);
}

/** Leftovers of removals that were interrupted (see removeContainerDir) or left to an exit keeper that was killed (.rm-*). */
export function removeDoomed(): void {
  try {
    for (const n of readdirSync(stateRoot())) {
      const doomed = n.startsWith(".rm-") || (isHex(n, 64) && !existsSync(join(stateRoot(), n, "config.json")));
      if (doomed) rmSync(join(stateRoot(), n), { recursive: true, force: true });
    }
  } catch {
    // no state root yet
  }
}

/**
 * Runs fn holding the container's lock (blocking until other nsbox commands on
 * the same container are done). The kernel drops the lock if nsbox dies.
 */
export async function withLock<T>(id: string, fn: () => Promise<T> | T): Promise<T> {
  let fd: number;
  try {
    fd = openSync(join(containerDir(id), "lock"), "r");
  } catch {
    fail(`no such container: ${id.slice(0, 12)} (it was removed)`);
  }
  try {
    flock(fd, LOCK_EX);
    return await fn();
  } finally {
    flock(fd, LOCK_UN);
    closeSync(fd);
  }
}

/**
 * withLock for the nsbox that waited for a container, once it exited: undefined
 * (fn not run) when the container is gone. contended runs only when another
 * command holds the lock at that moment, before waiting for it: a `nsbox wait`
 * holds it (shared) until it has read the exit status that contended leaves.
 */
export async function withLockAfterExit<T>(id: string, fn: () => Promise<T> | T, contended: () => void): Promise<T | undefined> {
  let fd: number;
  try {
    fd = openSync(join(containerDir(id), "lock"), "r");
  } catch {
    return undefined;
  }
  try {
    if (!flock(fd, LOCK_EX | LOCK_NB)) {
      contended();
      flock(fd, LOCK_EX);
    }
    return await fn();
  } finally {
    flock(fd, LOCK_UN);
    closeSync(fd);
  }
}

/** Resolves a user's reference (name, full id or unique id prefix) to an id. */
export function resolveRef(ref: string): string {
  const byName = nameTarget(ref);
  if (byName && existsSync(containerDir(byName))) return byName;
  if (isHex(ref)) {
    const hits = filter(listIds(), (id) => id.startsWith(ref));
    if (hits.length === 1) return hits[0] as string;
    if (hits.length > 1) fail(`"${ref}" matches ${hits.length} containers: give more digits of the id`);
  }
  fail(`no such container: ${ref}`);
}
