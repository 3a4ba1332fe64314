/**
 * The libc functions nsbox binds with bun:ffi's dlopen (the process already maps
 * libc.so.6, so this needs no dev package): memfd_create, to make the file that
 * the helper is dlopened from, and strerror for error texts. Each function bound
 * costs a start ~0.15 ms (bun:ffi compiles a trampoline for it), so each is bound
 * only when first needed, and everything else goes through the helper's one
 * function (src/native/helper.ts).
 */
import { dlopen, FFIType } from "bun:ffi";
import { writeSync } from "node:fs";

let memfd: ReturnType<typeof bindMemfd> | undefined;
let text: ReturnType<typeof bindStrerror> | undefined;

function bindMemfd() {
  return dlopen("libc.so.6", { memfd_create: { args: [FFIType.cstring, FFIType.u32], returns: FFIType.i32 } }).symbols;
}

function bindStrerror() {
  return dlopen("libc.so.6", { strerror: { args: [FFIType.i32], returns: FFIType.cstring } }).symbols;
}

export const MFD_CLOEXEC = 1;
export const MFD_ALLOW_SEALING = 2;

/** A memfd holding data; returns its fd (close-on-exec). */
export function memfdWith(name: string, data: Uint8Array, flags = MFD_CLOEXEC): number {
  memfd ??= bindMemfd();
  const fd = memfd.memfd_create(Buffer.from(`${name}\0`), flags);
  if (fd < 0) throw new Error(`memfd_create failed`);
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
  return fd;
}

/** The kernel's text for an errno, e.g. 2 -> "No such file or directory". */
export function strerror(errno: number): string {
  text ??= bindStrerror();
  return String(text.strerror(errno));
}
