/**
 * Encodes the programs that csrc/helper.c runs in the processes it creates:
 * W (the first child, before clone) and C (the container process, up to execve).
 * Policy lives in TypeScript; the child only carries out these steps, in order.
 *
 * Encoding (the host's byte order, 4-byte aligned): each op is u32 code, u32 size (bytes,
 * header included), then its fields: u32 numbers, strings as u32 length + bytes +
 * NUL padded to 4, string lists as u32 count + strings, bytes as u32 length +
 * bytes padded to 4. Keep in step with the
 * enums at the top of csrc/helper.c.
 */

import { utf8Encoder } from "./syscall.ts";

export const W = { SETNS: 1, CLONE: 2, EXIT: 3, EXEC: 4, SETSID: 5, CAPBSET: 6 } as const;
export const C = {
  SETNS: 20,
  UNSHARE: 21,
  SYNC: 22,
  PDEATHSIG: 23,
  SETID: 24,
  MOUNT: 25,
  ROOT: 26,
  MKNOD: 27,
  SYMLINK: 28,
  PIVOT: 29,
  HOSTNAME: 30,
  TTY: 31,
  STDIO: 32,
  CHDIR: 33,
  EXEC: 34,
  SETSID: 35,
  MKDIR: 36,
  REMOUNT: 37,
  PRCTL: 38,
  ATTACH: 39,
  IFUP: 40,
  CAPBSET: 41,
  CAPSET: 42,
  SECCOMP: 43,
  MASK: 44,
  ROPATH: 45,
  WAITSTART: 46,
  WRITE: 47,
  UMASK: 48,
  PERSONALITY: 49,
  KEYRING: 50,
  RLIMIT: 51,
  CHROOT: 52,
  MOVEROOT: 53,
  UNMOUNTHOST: 54,
} as const;

/** Messages on the sync socket (struct nsb_msg). */
export const MSG = { READY: 1, ERROR: 2, PTY: 3, CREATED: 4, GO: 10 } as const;
export const EXEC_INIT = 2;
export const EXEC_FD = 4;
/** What C_MOUNT and C_ATTACH create when the mount point is missing; SOURCE: what the bind's source is (a directory, or a file for anything else). */
export const MK = { NONE: 0, DIR: 1, FILE: 2, SOURCE: 3 } as const;

/** Bytes (a Uint8Array) are encoded as u32 length + the bytes, padded to 4. */
export type Field = number | string | readonly string[] | readonly number[] | Uint8Array;

/** One step, with a description for error messages ("mount proc on /proc"). */
export interface Op {
  code: number;
  fields: Field[];
  what: string;
}

/**
 * The encoder writes straight into one buffer: no array per field, no copy at the
 * end, one room check per op (the header and a u32 per field) and one per string,
 * byte string or list for the rest. It runs once per start, in the interpreter
 * (cold code), where every call and property read counts: W and C for `run` are
 * ~65 ops, ~220 fields, 9 KB, which took 0.5-0.9 ms as chunks joined at the end.
 * A u32 goes through a Uint32Array in the host's byte order, which is what the C
 * side reads (memcpy into a u32); every field starts 4-aligned. The buffer is
 * new and zeroed, so padding and string ends need no writes.
 */
let bytes = new Uint8Array(0);
let words = new Uint32Array(0);
let cap = 0;
let off = 0;

/** A new zeroed buffer of size bytes, viewed as bytes and as words (both from its start). */
function fresh(size: number): void {
  const ab = new ArrayBuffer(size);
  bytes = new Uint8Array(ab);
  words = new Uint32Array(ab);
  cap = size;
}

function grow(need: number): void {
  let size = cap * 2;
  while (size < need) size *= 2;
  const old = bytes;
  fresh(size);
  bytes.set(old.subarray(0, off));
}

function str(s: string): void {
  if (s.includes("\0")) throw new Error(`a NUL byte in ${JSON.stringify(s)}`);
  // the length, at most 3 UTF-8 bytes per UTF-16 unit, the NUL and the padding
  const end = off + 8 + 3 * s.length;
  if (end > cap) grow(end);
  const n = utf8Encoder().encodeInto(s, bytes.subarray(off + 4)).written;
  words[off >> 2] = n;
  off = (off + 4 + n + 1 + 3) & ~3;
}

function encodeOps(ops: readonly Op[]): void {
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as Op;
    const fields = op.fields;
    const start = off;
    const end = off + 8 + 4 * fields.length;
    if (end > cap) grow(end);
    words[off >> 2] = op.code;
    off += 8;
    for (let k = 0; k < fields.length; k++) {
      const f = fields[k] as Field;
      if (typeof f === "number") {
        // (a negative number, an fd -1, is stored as its u32 and read back as an i32)
        words[off >> 2] = f;
        off += 4;
      } else if (typeof f === "string") str(f);
      else if (f instanceof Uint8Array) {
        const e = off + 4 + f.length + 3;
        if (e > cap) grow(e);
        words[off >> 2] = f.length;
        bytes.set(f, off + 4);
        off = e & ~3;
      } else {
        const e = off + 4 + 4 * f.length;
        if (e > cap) grow(e);
        words[off >> 2] = f.length;
        off += 4;
        for (let j = 0; j < f.length; j++) {
          const x = f[j];
          if (typeof x === "number") {
            words[off >> 2] = x;
            off += 4;
          } else str(x as string);
        }
      }
    }
    words[(start >> 2) + 1] = off - start;
  }
}

/** W and C encoded back to back in one buffer: W's program is buf[0, wlen), C's buf[wlen, wlen + clen). */
export interface Encoded {
  buf: Uint8Array;
  wlen: number;
  clen: number;
}

export function encodePrograms(w: readonly Op[], c: readonly Op[]): Encoded {
  // 16 KiB hold `run`'s programs with docker's seccomp filter (9 KB): no growth in the usual case
  fresh(16384);
  off = 0;
  encodeOps(w);
  const wlen = off;
  encodeOps(c);
  // (the buffer is the caller's now: the next encoding starts a new one)
  return { buf: bytes, wlen, clen: off - wlen };
}

/** One program alone (tests, and callers that spawn nothing). */
export function encode(ops: readonly Op[]): Uint8Array {
  const { buf, clen } = encodePrograms([], ops);
  return buf.subarray(0, clen);
}
