/**
 * nsbox's memory freed, and directories removed, after nsbox has exited
 * (csrc/exit_teardown.c).
 *
 * A process's exit frees its address space before its parent learns of it: for
 * the ~30 MB of a `run` or `exec` that is 2-3 ms here, during which the caller
 * (a shell, a script, systemd) already has nothing to wait for. A child that
 * shares the address space (CLONE_VM) and dies with nsbox takes that work after
 * nsbox's exit: run /bin/true −1.8 to −2.6 ms in shuffled rounds against the same
 * code without it (bench/trace-notes.md, "Eleventh stop").
 *
 * The same child removes what a foreground container left once nothing can name
 * it any more (its layers and state, renamed to .rm-<id>): on this machine's ext4
 * an rmdir costs ~0.2 ms, and those removals were ~2 ms of a run's cleanup
 * (bench/trace-notes.md, "Twelfth stop").
 */
import { join } from "../posixpath.ts";
import { renameSync, rmSync } from "./fs.ts";
import { call, F } from "./helper.ts";
import { cstr } from "./syscall.ts";

/** what the keeper is to remove, in order */
const doomed: string[] = [];

/**
 * path renamed to `to` (a .rm-* name: out of every reader's view, and removed by
 * the reconcile if this removal never happens), then removed after nsbox's
 * exit, or before it when no keeper can be started. false: it could not be
 * renamed, and the caller removes it now. Only for what root can remove without
 * a user namespace (not a rootless container's layers).
 */
export function removeAfterExit(path: string, to: string): boolean {
  try {
    renameSync(path, to);
  } catch {
    return false;
  }
  // the keeper works from "/" (--root may be relative)
  doomed.push(to.startsWith("/") ? to : join(process.cwd(), to));
  return true;
}

/** Whether removals wait for the exit: then it must go through freeMemoryAfterExit. */
export function removalsPending(): boolean {
  return doomed.length > 0;
}

/**
 * Call right before the process exits (and never where it may go on for long:
 * the keeper, a process for as long as nsbox lives, keeps nsbox's memory
 * mapped). A failure changes nothing: nsbox then frees its memory itself, and
 * removes what was to be removed before it exits.
 */
export function freeMemoryAfterExit(): void {
  const paths = doomed.splice(0);
  const list = paths.length ? cstr(paths.join("\0")) : new Uint8Array(0);
  if (call(F.EXIT_KEEPER, list, list.length) >= 0) return;
  for (const p of paths) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch {
      // left as .rm-*: the next reconcile removes it
    }
  }
}
