/**
 * Random hex digits from the kernel's /dev/urandom: Web Crypto's first use maps
 * ~0.5 MiB and costs ~0.2 ms of a run's start (node:crypto ~3 ms to load).
 */
import { closeSync, openSync, readSync } from "../native/fs.ts";

function urandom(b: Uint8Array): Uint8Array {
  const fd = openSync("/dev/urandom", "r");
  try {
    let off = 0;
    while (off < b.length) {
      const n = readSync(fd, b, off, b.length - off, null);
      if (n <= 0) throw new Error("/dev/urandom gave no bytes");
      off += n;
    }
    return b;
  } finally {
    closeSync(fd);
  }
}

export function randomHex(bytes: number): string {
  let b: Uint8Array;
  try {
    b = urandom(new Uint8Array(bytes));
  } catch {
    // a /dev without urandom (nsbox itself in a bare container): Web Crypto
    b = crypto.getRandomValues(new Uint8Array(bytes));
  }
  let s = "";
  // (an index loop, no padStart: see src/list.ts)
  for (let i = 0; i < b.length; i++) s += ((b[i] as number) < 16 ? "0" : "") + (b[i] as number).toString(16);
  return s;
}
