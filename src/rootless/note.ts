/**
 * Notes a rootless user should read once, not on every run: each is shown the
 * first time and remembered in the user's state root (so again after a reboot).
 * They wait until the run's flags are all checked (flushNotes): a run refused
 * for another reason says that one thing only.
 */

import { log } from "../log.ts";
import { mkdirSync, writeFileSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { roots } from "../state/paths.ts";

const pending = new Map<string, string>();

export function noteOnce(key: string, text: string): void {
  pending.set(key, text);
}

export function flushNotes(): void {
  const dir = join(roots().state, "notes");
  for (const [key, text] of pending) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(join(dir, key), "", { flag: "wx" });
    } catch {
      // said before (EEXIST); or the state root is unusable, and the run fails on it with its own message
      continue;
    }
    log.info(text);
  }
  pending.clear();
}
