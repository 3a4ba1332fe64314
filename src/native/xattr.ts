/**
 * Extended attributes, for the tar extractor (pax SCHILY.xattr.* records, the
 * overlayfs opaque marker): node:fs has no call for them. Reached with dlopen
 * like ./mknod.ts, and loaded only when an archive actually carries one.
 */
import { dlopen, FFIType, read } from "bun:ffi";
import { constants } from "node:os";

let lib: ReturnType<typeof open> | undefined;

function open() {
  return dlopen("libc.so.6", {
    fsetxattr: { args: [FFIType.i32, FFIType.cstring, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    lsetxattr: { args: [FFIType.cstring, FFIType.cstring, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    lgetxattr: { args: [FFIType.cstring, FFIType.cstring, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    __errno_location: { args: [], returns: FFIType.ptr },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  });
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

function cstr(s: string | Uint8Array): Buffer {
  return Buffer.concat([typeof s === "string" ? Buffer.from(s) : s, Buffer.of(0)]);
}

/** An Error carrying `code` (e.g. "ENOTSUP") from errno, read at once after the failed call. */
function failure(call: string, name: string, l: NonNullable<typeof lib>): NodeJS.ErrnoException {
  const ptr = l.symbols.__errno_location();
  const errno = ptr === null ? 0 : read.i32(ptr, 0);
  const code = errnoName(errno);
  const err = new Error(`${call} ${JSON.stringify(name)}: ${code} (${String(l.symbols.strerror(errno))})`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = errno;
  err.syscall = call;
  return err;
}

/** Sets an xattr on an open file (no path, so nothing to follow). Throws with `code` on failure. */
export function fsetxattr(fd: number, name: string, value: Uint8Array): void {
  lib ??= open();
  // A zero-length value still needs a valid pointer.
  const buf = value.length > 0 ? value : Buffer.alloc(1);
  if (lib.symbols.fsetxattr(fd, cstr(name), buf, value.length, 0) !== 0) throw failure("fsetxattr", name, lib);
}

/** Sets an xattr on a path without following a final symlink. `path` may be raw bytes. */
export function lsetxattr(path: string | Uint8Array, name: string, value: Uint8Array): void {
  lib ??= open();
  const buf = value.length > 0 ? value : Buffer.alloc(1);
  if (lib.symbols.lsetxattr(cstr(path), cstr(name), buf, value.length, 0) !== 0) throw failure("lsetxattr", name, lib);
}

/** An xattr's value (at most 64 KiB, the kernel's limit), or null when the file has none by that name. */
export function lgetxattr(path: string | Uint8Array, name: string): Buffer | null {
  lib ??= open();
  const buf = Buffer.alloc(65536);
  const n = Number(lib.symbols.lgetxattr(cstr(path), cstr(name), buf, buf.length));
  if (n >= 0) return buf.subarray(0, n);
  const err = failure("lgetxattr", name, lib);
  if (err.code === "ENODATA") return null;
  throw err;
}
