/**
 * mknod(2), for the tar extractor: node:fs can create files, directories and links
 * but has no call for device nodes or FIFOs. Reached with dlopen like ./libc.ts,
 * and kept in its own module so the extractor does not load libc until an archive
 * actually holds a node.
 */
import { dlopen, FFIType, read } from "bun:ffi";
import { constants } from "node:os";

let lib: ReturnType<typeof open> | undefined;

function open() {
  return dlopen("libc.so.6", {
    // glibc >= 2.33 exports mknod itself (before, only the __xmknod wrapper).
    mknod: { args: [FFIType.cstring, FFIType.u32, FFIType.u64], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  });
}

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/**
 * The kernel's dev_t for a major and minor number (glibc's makedev). A BigInt:
 * majors above 4095 put bits past 2^53.
 */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return (mi & 0xffn) | ((ma & 0xfffn) << 8n) | ((mi & ~0xffn) << 12n) | ((ma & ~0xfffn) << 32n);
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

/**
 * Creates a device node or FIFO. `mode` holds the type (S_IFCHR, S_IFBLK or
 * S_IFIFO) and the permission bits (the umask applies); `dev` is a makedev()
 * value, ignored for FIFOs. `path` may be raw bytes, for names that are not UTF-8.
 * Throws an Error carrying `code` (e.g. "EPERM") and `errno` on failure.
 */
export function mknod(path: string | Uint8Array, mode: number, dev: number | bigint): void {
  lib ??= open();
  const bytes = typeof path === "string" ? Buffer.from(path) : path;
  const cpath = Buffer.concat([bytes, Buffer.of(0)]);
  if (lib.symbols.mknod(cpath, mode, BigInt(dev)) === 0) return;
  // Read errno at once: no other libc call has run on this thread since mknod.
  const ptr = lib.symbols.__errno_location();
  const errno = ptr === null ? 0 : read.i32(ptr, 0);
  const code = errnoName(errno);
  const shown = typeof path === "string" ? path : Buffer.from(path).toString();
  const err = new Error(`mknod "${shown}": ${code} (${String(lib.symbols.strerror(errno))})`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = errno;
  err.syscall = "mknod";
  throw err;
}
