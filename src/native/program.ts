/**
 * Encodes the programs that csrc/helper.c runs in the processes it creates:
 * W (the first child, before clone) and C (the container process, up to execve).
 * Policy lives in TypeScript; the child only carries out these steps, in order.
 *
 * Encoding (little-endian, 4-byte aligned): each op is u32 code, u32 size (bytes,
 * header included), then its fields: u32 numbers, strings as u32 length + bytes +
 * NUL padded to 4, string lists as u32 count + strings, bytes as u32 length +
 * bytes padded to 4. Keep in step with the
 * enums at the top of csrc/helper.c.
 */

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
export const MK = { NONE: 0, DIR: 1, FILE: 2 } as const;

/** Bytes (a Uint8Array) are encoded as u32 length + the bytes, padded to 4. */
export type Field = number | string | readonly string[] | readonly number[] | Uint8Array;

/** One step, with a description for error messages ("mount proc on /proc"). */
export interface Op {
  code: number;
  fields: Field[];
  what: string;
}

const enc = new TextEncoder();

export function encode(ops: readonly Op[]): Uint8Array {
  const out: Uint8Array[] = [];
  let total = 0;
  for (const op of ops) {
    const chunks: Uint8Array[] = [];
    let size = 8;
    const u32 = (v: number) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, v >>> 0, true);
      chunks.push(b);
      size += 4;
    };
    const str = (s: string) => {
      if (s.includes("\0")) throw new Error(`a NUL byte in ${JSON.stringify(s)}`);
      const bytes = enc.encode(s);
      u32(bytes.length);
      const padded = (bytes.length + 1 + 3) & ~3;
      const b = new Uint8Array(padded);
      b.set(bytes);
      chunks.push(b);
      size += padded;
    };
    for (const f of op.fields) {
      if (typeof f === "number") u32(f);
      else if (typeof f === "string") str(f);
      else if (f instanceof Uint8Array) {
        u32(f.length);
        const b = new Uint8Array((f.length + 3) & ~3);
        b.set(f);
        chunks.push(b);
        size += b.length;
      } else {
        u32(f.length);
        for (const x of f) typeof x === "number" ? u32(x) : str(x);
      }
    }
    const head = new Uint8Array(8);
    const dv = new DataView(head.buffer);
    dv.setUint32(0, op.code, true);
    dv.setUint32(4, size, true);
    out.push(head, ...chunks);
    total += size;
  }
  const buf = new Uint8Array(total);
  let off = 0;
  for (const c of out) {
    buf.set(c, off);
    off += c.length;
  }
  return buf;
}
