/**
 * memfd_create, to make the file that the shim is run from, and libc's strerror
 * for error texts. strerror is bound with bun:ffi's dlopen (the process already
 * maps libc.so.6, so this needs no dev package) only when an error needs its
 * text: bun:ffi is loaded then, not at a start (see src/native/addon.ts).
 * Everything else goes through raw system calls (src/native/syscall.ts) or the
 * helper's call() (src/native/helper.ts).
 */
import { writeSync } from "./fs.ts";
import { addr, cstr, sys } from "./syscall.ts";

let text: ReturnType<typeof bindStrerror> | undefined;

function bindStrerror() {
  const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
  return dlopen("libc.so.6", { strerror: { args: [FFIType.i32], returns: FFIType.cstring } }).symbols;
}

export const MFD_CLOEXEC = 1;
export const MFD_ALLOW_SEALING = 2;

/** A memfd holding data; returns its fd (close-on-exec). */
export function memfdWith(name: string, data: Uint8Array, flags = MFD_CLOEXEC): number {
  const n = cstr(name);
  const fd = sys("memfd_create", addr(n), flags);
  if (fd < 0) throw new Error(`memfd_create failed: ${strerror(-fd)}`);
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
  return fd;
}

/** Seals a memfd: nobody, not even a container holding /proc/N/exe, can change it. */
export function seal(fd: number): void {
  const F_ADD_SEALS = 1033;
  const ALL = 1 | 2 | 4 | 8; // F_SEAL_SEAL, _SHRINK, _GROW, _WRITE
  sys("fcntl", fd, F_ADD_SEALS, ALL);
}

/** The kernel's text for an errno, e.g. 2 -> "No such file or directory". */
export function strerror(errno: number): string {
  text ??= bindStrerror();
  return String(text.strerror(errno));
}
