/**
 * src/native/away.ts (csrc/write_away.c): writes done by a CLONE_VM child of the
 * helper's, as the cgroup warm-up and the asynchronous join use them. Real
 * files and FIFOs: a writer that opens a FIFO waits for a reader, which holds
 * its slot for as long as the test wants.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { awayDone, awayResult, writeAway } from "../../src/native/away.ts";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "nsbox-away-"));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The state letter of a process (Z: a zombie), or undefined once it is gone (reaped). */
function stateOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
  } catch {
    return undefined;
  }
}

test("a write is done by another process, and reported as written; the writer is reaped", async () => {
  const f = join(dir, "procs");
  closeSync(openSync(f, "w"));
  const pid = writeAway(f, "12345\n");
  expect(pid).toBeGreaterThan(0);
  expect(pid).not.toBe(process.pid);
  expect(await awayResult(pid as number)).toBe(0);
  expect(readFileSync(f, "utf8")).toBe("12345\n");
  expect(stateOf(pid as number)).toBeUndefined();
  // once reaped, the writer is no longer known: never a wait on a stranger's pid
  expect(awayDone(pid as number, true)).toBe(10); // ECHILD
});

test("a refused write reports its errno, and creates nothing (no O_CREAT: cgroup files exist)", async () => {
  const missing = join(dir, "missing");
  const pid = writeAway(missing, "1\n") as number;
  expect(await awayResult(pid)).toBe(2); // ENOENT
  expect(() => readFileSync(missing)).toThrow();
  const inDir = writeAway(join(dir, "nodir", "x"), "1\n") as number;
  expect(await awayResult(inDir)).toBe(2);
});

test("four writers at most: a fifth is not started (its caller writes itself); a slot frees once its writer is reaped", async () => {
  const fifos = [0, 1, 2, 3, 4].map((i) => join(dir, `fifo${i}`));
  for (const f of fifos) execFileSync("mkfifo", [f]);
  // each writer waits in open() until the FIFO has a reader
  const pids = fifos.slice(0, 4).map((f) => writeAway(f, "x\n"));
  try {
    await slots(fifos, pids);
  } finally {
    // whatever failed: no writer is left waiting on a FIFO (each shares this process's memory)
    for (const f of fifos) closeSync(openSync(f, constants.O_RDONLY | constants.O_NONBLOCK));
  }
});

async function slots(fifos: string[], pids: (number | undefined)[]): Promise<void> {
  for (const pid of pids) expect(pid).toBeGreaterThan(0);
  expect(awayDone(pids[0] as number, true)).toBeUndefined(); // still under way
  expect(writeAway(fifos[4] as string, "x\n")).toBeUndefined();
  // a reader lets the first writer finish; reaped, its slot takes the fifth write
  const r0 = openSync(fifos[0] as string, "r");
  expect(awayDone(pids[0] as number, false)).toBe(0);
  expect(readFileSync(r0, "utf8")).toBe("x\n");
  closeSync(r0);
  const fifth = writeAway(fifos[4] as string, "x\n");
  expect(fifth).toBeGreaterThan(0);
  for (const [i, pid] of [...pids.slice(1), fifth].entries()) {
    const r = openSync(fifos[i + 1] as string, "r");
    expect(await awayResult(pid as number)).toBe(0);
    expect(readFileSync(r, "utf8")).toBe("x\n");
    closeSync(r);
  }
}

test("a path or text too long for a writer's slot is not started", () => {
  expect(writeAway(`/${"x".repeat(600)}`, "1\n")).toBeUndefined();
  expect(writeAway(join(dir, "f"), "y".repeat(100))).toBeUndefined();
});
