/**
 * chroot(2) and fchdir(2), for `nsbox export`: the container's files are read
 * with its own root as "/", so that a symlink in them (even one swapped in while
 * the export runs) can only lead to another of its files, never to the host's.
 * Reached with dlopen like ./libc.ts.
 */
import { dlopen, FFIType, read } from "bun:ffi";

let lib: ReturnType<typeof open> | undefined;

function open() {
  return dlopen("libc.so.6", {
    chroot: { args: [FFIType.cstring], returns: FFIType.i32 },
    fchdir: { args: [FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
}

function call(what: string, r: number): void {
  if (r === 0) return;
  const s = (lib as ReturnType<typeof open>).symbols;
  const errno = read.i32(s.__errno_location() as NonNullable<ReturnType<typeof s.__errno_location>>, 0);
  throw new Error(`${what} failed (errno ${errno})`);
}

/** chroot(path), then chdir to the new root. */
export function enterRoot(path: string): void {
  lib ??= open();
  call(`chroot ${path}`, lib.symbols.chroot(Buffer.from(`${path}\0`)));
  process.chdir("/");
}

/** Back to the root whose directory fd was kept before enterRoot (fchdir to it, chroot "."). */
export function leaveRoot(rootFd: number): void {
  lib ??= open();
  call("fchdir", lib.symbols.fchdir(rootFd));
  call("chroot .", lib.symbols.chroot(Buffer.from(".\0")));
  process.chdir("/");
}
