/**
 * A container's state dir goes config.json first (src/state/store.ts): from then
 * on no reader finds the container, and a dir left without config.json (the
 * removal cut short) is finished by the next reconcile (removeDoomed), with the
 * .rm-* dirs of older nsbox. A container with its config.json is never touched.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { roots, setRoots } from "../../src/state/paths.ts";
import {
  type ContainerConfig,
  containerDir,
  createContainerDir,
  listIds,
  readConfig,
  readExitFile,
  removeContainerDir,
  removeDoomed,
  withLockAfterExit,
  writeExitFile,
} from "../../src/state/store.ts";

const dir = mkdtempSync(join(tmpdir(), "nsbox-state-"));
// bun runs every unit test file in one process: the roots go back to what they
// were, or a later file's seccomp cache would recreate this dir after its removal
let before: ReturnType<typeof roots> | undefined;
beforeAll(() => {
  before = roots();
  setRoots({ state: join(dir, "state"), root: join(dir, "data") });
});
afterAll(() => {
  if (before) setRoots({ state: before.state, root: before.data });
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
function newContainer(): string {
  const id = (++n).toString(16).padStart(64, "a");
  const config = { id, created: new Date().toISOString(), rootfs: "/x", detached: false, autoRemove: true, dataDir: "/nowhere" };
  createContainerDir(config as unknown as ContainerConfig, { phase: "running" });
  return id;
}

describe("removing a container's state dir", () => {
  test("everything goes, files nsbox does not name included (logs)", () => {
    const id = newContainer();
    writeFileSync(join(containerDir(id), "ctr.log"), "out\n");
    writeFileSync(join(containerDir(id), "hosts"), "127.0.0.1 localhost\n");
    removeContainerDir(id);
    expect(existsSync(containerDir(id))).toBe(false);
    expect(listIds()).not.toContain(id);
  });

  test("a removal cut short after config.json is invisible to readers, and the next reconcile finishes it", () => {
    const cut = newContainer();
    const kept = newContainer();
    unlinkSync(join(containerDir(cut), "config.json")); // what an nsbox killed right after that unlink leaves
    expect(readConfig(cut)).toBeUndefined();
    mkdirSync(join(dir, "state", `.rm-${kept}-0000`)); // an older nsbox's doomed dir
    removeDoomed();
    expect(existsSync(containerDir(cut))).toBe(false);
    expect(readdirSync(join(dir, "state")).filter((e) => e.startsWith(".rm-"))).toEqual([]);
    expect(readConfig(kept)?.id).toBe(kept);
    removeContainerDir(kept);
  });

  test("twice, or of a container already gone: no error", () => {
    const id = newContainer();
    removeContainerDir(id);
    removeContainerDir(id);
    expect(existsSync(containerDir(id))).toBe(false);
  });
});

describe("the lock after a foreground container exited", () => {
  test("free: fn runs, the exit is not written (nobody waits for it)", async () => {
    const id = newContainer();
    let wrote = false;
    expect(
      await withLockAfterExit(
        id,
        () => readExitFile(id),
        () => {
          wrote = true;
        },
      ),
    ).toBeUndefined();
    expect(wrote).toBe(false);
    removeContainerDir(id);
  });

  test("gone: undefined, fn not run", async () => {
    const id = newContainer();
    removeContainerDir(id);
    let ran = false;
    expect(
      await withLockAfterExit(
        id,
        () => {
          ran = true;
        },
        () => undefined,
      ),
    ).toBeUndefined();
    expect(ran).toBe(false);
  });

  test("held (as `nsbox wait` holds it): the exit is written before waiting for the lock", async () => {
    const id = newContainer();
    // another process holds it shared while it reads the exit file, as waitExit does
    const untilExit = `i=0; while [ ! -e ${containerDir(id)}/exit ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done`;
    const holder = Bun.spawn(["flock", "-s", join(containerDir(id), "lock"), "sh", "-c", untilExit]);
    for (let i = 0; i < 200 && !lockHeld(id); i++) await Bun.sleep(10);
    expect(lockHeld(id)).toBe(true);
    const seen = await withLockAfterExit(
      id,
      () => readExitFile(id)?.waitStatus,
      () => writeExitFile(id, { waitStatus: 9 << 8, finishedAt: new Date().toISOString() }),
    );
    expect(seen).toBe(9 << 8);
    expect(await holder.exited).toBe(0);
    removeContainerDir(id);
  });
});

/** Whether some process holds a lock on the container's lock file (/proc/locks names its inode). */
function lockHeld(id: string): boolean {
  const ino = statSync(join(containerDir(id), "lock")).ino;
  return readFileSync("/proc/locks", "utf8").includes(`:${ino} `);
}
