/**
 * Notes a rootless user should read once, not on every run: each is shown the
 * first time and remembered in the user's state root (so again after a reboot).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { log } from "../log.ts";
import { roots } from "../state/paths.ts";

export function noteOnce(key: string, text: string): void {
  const dir = join(roots().state, "notes");
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, key), "", { flag: "wx" });
  } catch {
    // said before (EEXIST); or the state root is unusable, and the run fails on it with its own message
    return;
  }
  log.info(text);
}
