/**
 * Temporary directories for unit tests, removed when the test file ends (a test
 * run leaves nothing in /tmp): the file calls afterAll(removeTempDirs).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];

/** Removes every directory tempDir made (the test file's afterAll). */
export function removeTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A new empty directory under $TMPDIR named PREFIX-XXXXXX. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}
