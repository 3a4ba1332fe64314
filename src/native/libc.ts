/**
 * The few libc functions nsbox needs before its own helper is loaded (a memfd to
 * dlopen it from), for error texts, and for the foreground handoff (handoff.ts).
 * Reached with dlopen: the process already maps libc.so.6, so this needs no dev
 * package; one dlopen for all of them (each one costs ~0.1 ms of a run's start).
 */
import { dlopen, FFIType } from "bun:ffi";
import { writeSync } from "node:fs";

let lib: ReturnType<typeof open> | undefined;

function open() {
  return dlopen("libc.so.6", {
    memfd_create: { args: [FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    pthread_sigmask: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    fexecve: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    dup: { args: [FFIType.i32], returns: FFIType.i32 },
    sigaction: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  });
}

export function libc() {
  lib ??= open();
  return lib.symbols;
}

export const MFD_CLOEXEC = 1;
export const MFD_ALLOW_SEALING = 2;

/** A memfd holding data; returns its fd (close-on-exec). */
export function memfdWith(name: string, data: Uint8Array, flags = MFD_CLOEXEC): number {
  const fd = libc().memfd_create(Buffer.from(`${name}\0`), flags);
  if (fd < 0) throw new Error(`memfd_create failed`);
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
  return fd;
}

/** The kernel's text for an errno, e.g. 2 -> "No such file or directory". */
export function strerror(errno: number): string {
  return String(libc().strerror(errno));
}

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** flock(2) on an open fd; returns false when LOCK_NB was given and the lock is held. */
export function flock(fd: number, op: number): boolean {
  return libc().flock(fd, op) === 0;
}
