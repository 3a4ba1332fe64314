/**
 * Replacing this Bun process with the shim (execve), for a foreground run that
 * only waits from now on (see runForeground and csrc/shim_fg.c). Through libc,
 * reached with dlopen as in libc.ts.
 *
 * Signals: Bun's handlers are gone after execve, and a signal that arrives in
 * between must not be lost. The main thread (Bun's JS thread, the one that calls
 * execve) blocks them first: from then on one that comes is either taken by
 * another of Bun's threads (its handler queues it for JS: drained with one turn
 * of the event loop, see drainSignals) or, once execve has begun to end those
 * threads, left pending, which execve keeps for the shim's signalfd.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";

let lib: ReturnType<typeof open> | undefined;

function open() {
  return dlopen("libc.so.6", {
    pthread_sigmask: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    fexecve: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    dup: { args: [FFIType.i32], returns: FFIType.i32 },
  });
}

function libc() {
  lib ??= open();
  return lib.symbols;
}

const SIG_BLOCK = 0;
const SIG_UNBLOCK = 1;

function sigset(signals: number[]): Uint8Array {
  const set = new BigUint64Array(16); // glibc's sigset_t: 1024 bits
  for (const s of signals) set[0] = (set[0] as bigint) | (1n << BigInt(s - 1));
  return new Uint8Array(set.buffer);
}

/** Blocks (or unblocks) signals in the calling (JS) thread. */
export function blockSignals(signals: number[], block = true): void {
  libc().pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, sigset(signals), null);
}

/** One turn of the event loop: what Bun's signal handlers queued runs now. */
export async function drainSignals(): Promise<void> {
  await new Promise<void>((r) => setImmediate(r));
  await new Promise<void>((r) => setImmediate(r));
}

/** A copy of fd that survives execve (Bun's fds are close-on-exec). */
export function inheritableDup(fd: number): number {
  return libc().dup(fd);
}

/** Replaces this process with the program in fd; returns only if that failed. */
export function execFd(fd: number, argv: string[], env: string[]): void {
  const keep: Buffer[] = [];
  const vector = (items: string[]) => {
    const v = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => {
      const b = Buffer.from(`${s}\0`);
      keep.push(b);
      v[i] = BigInt(ptr(b));
    });
    return v;
  };
  const a = vector(argv);
  const e = vector(env);
  libc().fexecve(fd, a, e);
  keep.length = 0;
}
