/**
 * nsbox's memory freed after nsbox has exited (csrc/exit_teardown.c).
 *
 * A process's exit frees its address space before its parent learns of it: for
 * the ~30 MB of a `run` or `exec` that is 2-3 ms here, during which the caller
 * (a shell, a script, systemd) already has nothing to wait for. A child that
 * shares the address space (CLONE_VM) and dies with nsbox takes that work after
 * nsbox's exit: run /bin/true −1.8 to −2.6 ms in shuffled rounds against the same
 * code without it (bench/trace-notes.md, "Eleventh stop").
 */
import { call, F } from "./helper.ts";

/**
 * Call right before the process exits (and never where it may go on for long:
 * the keeper, a process for as long as nsbox lives, keeps nsbox's memory
 * mapped). A failure changes nothing: nsbox then frees its memory itself.
 */
export function freeMemoryAfterExit(): void {
  call(F.EXIT_KEEPER);
}
