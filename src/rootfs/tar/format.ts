/**
 * The tar format: header blocks (ustar, GNU, v7), numbers in octal or base-256,
 * checksums, pax records and GNU long names.
 */
import { show, TarError } from "./policy.ts";

export const BLOCK = 512;

/** A member of the archive, with GNU long names and pax records already applied. */
export interface Entry {
  /** the name as stored (before normalisation), for messages */
  raw: string;
  /** normalised, relative to dest; "" is dest itself */
  path: string;
  /** typeflag, as a char code */
  type: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** seconds since the epoch, possibly fractional (pax) or negative */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** extended attributes from pax records, name (UTF-8) and value */
  xattrs?: Xattr[];
}

export type Xattr = [name: string, value: Buffer];

export const T_FILE = 0x30; // '0'
export const T_OLDFILE = 0; // '\0', pre-POSIX regular file
export const T_LINK = 0x31; // '1'
export const T_SYMLINK = 0x32; // '2'
export const T_CHR = 0x33; // '3'
export const T_BLK = 0x34; // '4'
export const T_DIR = 0x35; // '5'
export const T_FIFO = 0x36; // '6'
export const T_CONTIG = 0x37; // '7', a regular file everywhere that matters
export const T_PAX = 0x78; // 'x'
export const T_PAX_SOLARIS = 0x58; // 'X', same as 'x'
export const T_PAX_GLOBAL = 0x67; // 'g'
export const T_GNU_LONGNAME = 0x4c; // 'L'
export const T_GNU_LONGLINK = 0x4b; // 'K'
export const T_GNU_DUMPDIR = 0x44; // 'D', a directory followed by a listing of it
export const T_GNU_SPARSE = 0x53; // 'S'
export const T_GNU_VOLHDR = 0x56; // 'V', a volume label: nothing to extract
export const T_GNU_MULTIVOL = 0x4d; // 'M'
export const T_GNU_NAMES = 0x4e; // 'N', obsolete GNU rename records

/** Archive metadata records are buffered whole; this bounds their size. */
export const MAX_META = 8 << 20;

/** A NUL-terminated string field, latin1-decoded. */
export function field(h: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && h[end] !== 0) end++;
  return h.toString("latin1", off, end);
}

/** An octal number field, or a GNU base-256 one (high bit of the first byte set). */
export function number(h: Buffer, off: number, len: number, what: string, entry: () => string): number {
  const first = h[off] ?? 0;
  if (first & 0x80) return base256(h, off, len, what, entry);
  let i = off;
  const end = off + len;
  while (i < end && h[i] === 0x20) i++;
  let v = 0;
  for (; i < end; i++) {
    const c = h[i] ?? 0;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new TarError(`malformed ${what} field in the header of ${entry()}`);
    v = v * 8 + (c - 0x30);
  }
  return v;
}

function base256(h: Buffer, off: number, len: number, what: string, entry: () => string): number {
  // Two's complement, big-endian, over the whole field but the marker bit:
  // 0x80 starts a positive number, 0xff a negative one.
  const first = (h[off] ?? 0) & 0x7f;
  let v = first & 0x40 ? first - 0x80 : first;
  for (let i = 1; i < len; i++) {
    v = v * 256 + (h[off + i] ?? 0);
    if (!Number.isSafeInteger(v)) throw new TarError(`the ${what} of ${entry()} is out of range`);
  }
  return v;
}

/**
 * Checks the header checksum: "end" for an all-zero block (the end of the
 * archive), "bad" for a mismatch. Both the unsigned sum (POSIX) and the signed
 * one (old Unix tars) are accepted, as GNU tar does.
 */
export function checkHeader(h: Buffer): "ok" | "end" | "bad" {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
    unsigned += b;
    signed += b < 128 ? b : b - 256;
  }
  if (unsigned === 8 * 0x20) {
    let zero = true;
    for (let i = 148; i < 156; i++) if (h[i] !== 0) zero = false;
    if (zero) return "end";
  }
  let stored: number;
  try {
    stored = number(h, 148, 8, "checksum", () => "");
  } catch {
    return "bad";
  }
  return stored === unsigned || stored === signed ? "ok" : "bad";
}

/** pax records "LEN key=value\n", into a map; an empty value means "unset". */
export function parsePax(data: Buffer, into: Map<string, string>, where: () => string): void {
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break; // some writers pad the block with NULs
    const space = data.indexOf(0x20, i);
    const len = space > i && space - i < 20 ? Number(data.toString("latin1", i, space)) : Number.NaN;
    if (!Number.isSafeInteger(len) || len <= space - i || i + len > data.length || data[i + len - 1] !== 0x0a)
      throw new TarError(`malformed pax header ${where()}`);
    const record = data.toString("latin1", space + 1, i + len - 1);
    const eq = record.indexOf("=");
    if (eq <= 0) throw new TarError(`malformed pax header ${where()}`);
    into.set(record.slice(0, eq), record.slice(eq + 1));
    i += len;
  }
}

/** A pax value from the entry's records, else the global ones; undefined if unset. */
export function paxValue(key: string, local: Map<string, string>, global: Map<string, string>): string | undefined {
  const v = local.get(key) ?? global.get(key);
  return v === "" ? undefined : v;
}

export function paxInteger(v: string, key: string, entry: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new TarError(`malformed pax ${key} "${v}" for entry ${show(entry)}`);
  return n;
}

export function paxTime(v: string, key: string, entry: string): number {
  if (!/^-?\d+(\.\d+)?$/.test(v)) throw new TarError(`malformed pax ${key} "${v}" for entry ${show(entry)}`);
  return Number(v);
}

export function hasSparse(map: Map<string, string>): boolean {
  for (const key of map.keys()) if (key.startsWith("GNU.sparse.")) return true;
  return false;
}

/** The name field, with the POSIX ustar prefix when there is one. */
export function ustarName(h: Buffer): string {
  const name = field(h, 0, 100);
  // "ustar\0" is POSIX; GNU's "ustar  \0" uses the prefix bytes for other things.
  const posix = h[257] === 0x75 && h[258] === 0x73 && h[259] === 0x74 && h[260] === 0x61 && h[261] === 0x72 && h[262] === 0;
  if (!posix || h[345] === 0) return name;
  return `${field(h, 345, 155)}/${name}`;
}

const SCHILY_XATTR = "SCHILY.xattr.";
const LIBARCHIVE_XATTR = "LIBARCHIVE.xattr.";

/**
 * The extended attributes in an entry's pax records: GNU tar's and star's
 * `SCHILY.xattr.NAME=VALUE` (the value as raw bytes), and libarchive's
 * `LIBARCHIVE.xattr.NAME=BASE64` (the name URL-encoded), which bsdtar writes
 * next to the former; SCHILY wins when both name the same attribute.
 */
export function paxXattrs(pax: Map<string, string>, entry: string): Xattr[] | undefined {
  let out: Map<string, Buffer> | undefined;
  const bad = (key: string): never => {
    throw new TarError(`malformed pax ${show(key)} for entry ${show(entry)}`);
  };
  for (const [key, value] of pax) {
    if (!key.startsWith(SCHILY_XATTR)) continue;
    const name = Buffer.from(key.slice(SCHILY_XATTR.length), "latin1").toString("utf8");
    if (name === "" || name.includes("\0")) bad(key);
    (out ??= new Map()).set(name, Buffer.from(value, "latin1"));
  }
  for (const [key, value] of pax) {
    if (!key.startsWith(LIBARCHIVE_XATTR)) continue;
    let name = "";
    try {
      name = decodeURIComponent(Buffer.from(key.slice(LIBARCHIVE_XATTR.length), "latin1").toString("utf8"));
    } catch {
      bad(key);
    }
    if (name === "" || name.includes("\0")) bad(key);
    if (!out?.has(name)) (out ??= new Map()).set(name, Buffer.from(value, "base64"));
  }
  return out ? [...out] : undefined;
}
