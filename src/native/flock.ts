/**
 * flock(2), through the helper (src/native/helper.ts): the state, network, OCI
 * and image stores lock with it. A blocking lock is retried when a signal
 * interrupts it (the helper does), so it returns only once the lock is held.
 */
import { call, F } from "./helper.ts";

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** flock(2) on an open fd; returns false when LOCK_NB was given and the lock is held. */
export function flock(fd: number, op: number): boolean {
  return call(F.FLOCK, fd, op) === 0;
}
