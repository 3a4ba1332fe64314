/**
 * A streaming, safe tar extractor for rootfs tarballs (.tar, .tar.gz, .tar.zst).
 *
 * The tree it builds is meant to be the one GNU tar's `tar -xpf` builds as root:
 * same paths, contents, modes (setuid/setgid/sticky included), numeric owners,
 * hardlinks, symlink targets (absolute ones stay absolute), device nodes, FIFOs
 * and mtimes, directories included.
 *
 * How it works: a Source yields the decompressed archive in chunks (the file read
 * in 256 KiB blocks; gzip through node:zlib, whose streams inflate off the JS
 * thread; zstd through a `zstd -dc` child process, or node:zlib without one; see
 * openSource for the measurements). A TarReader parses it as a push state
 * machine, so a header or a file's data may be split across chunks anywhere, and
 * hands file data straight to the Extractor, which writes it with synchronous fs
 * calls (far fewer promise hops than async ones) without ever holding a whole
 * file. Memory depends on the number of entries (one small record per path) and
 * the directory depth, not on the size of the archive or of its files.
 *
 * Safety: `dest` starts empty and only this code writes into it, so the Extractor
 * knows the type of every path in it. An entry is refused (TarError, extraction
 * stops) before anything is created for it when its name is absolute or has a
 * ".." component, when a parent of it is a symlink from the archive, or when it
 * is a hardlink to something absolute, to "..", or to a path the archive has not
 * created. Files are opened with O_EXCL|O_NOFOLLOW and a path is unlinked first
 * when the archive replaces it, so no write ever goes through a symlink; link(2)
 * does not follow symlinks either (a hardlink to a symlink links the symlink, as
 * GNU tar does); and directories get their final metadata through
 * O_DIRECTORY|O_NOFOLLOW descriptors.
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { Readable } from "node:stream";
import { createGunzip, createZstdDecompress } from "node:zlib";
import { makedev, mknod, S_IFBLK, S_IFCHR, S_IFIFO } from "../native/mknod.ts";
import { inChildUserNamespace } from "../rootless/identity.ts";

/** An archive that is unsafe or malformed; the message is one line naming the entry. */
export class TarError extends Error {
  override name = "TarError";
}

// ---------------------------------------------------------------------------
// Names. Inside this module a path is a "binary string": one char per byte of
// the name as stored (latin1 decoding), so names that are not valid UTF-8
// survive unchanged; fsPath() turns one back into bytes for the kernel.

/** A name as the user should see it in a message (JSON-quoted, UTF-8 decoded). */
function show(name: string): string {
  return JSON.stringify(Buffer.from(name, "latin1").toString("utf8"));
}

function refuse(name: string, why: string): never {
  throw new TarError(`refusing entry ${show(name)}: ${why}`);
}

/**
 * The name relative to dest, with "." components, repeated and trailing slashes
 * removed ("" is dest itself). `entry` is the entry the name belongs to, for
 * the message; `what` says which name of it this is.
 */
function normalize(raw: string, entry: string, what = "it"): string {
  if (raw.includes("\0")) refuse(entry, `${what} contains a NUL byte`);
  if (raw.startsWith("/")) refuse(entry, what === "it" ? "it is an absolute path" : `${what} ${show(raw)} is an absolute path`);
  // Fast path for the common clean name: nothing starts with "." after a slash.
  if (raw.charCodeAt(0) !== 0x2e && !raw.includes("/.") && !raw.includes("//") && !raw.endsWith("/")) return raw;
  const parts: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") refuse(entry, what === "it" ? 'it climbs out of the target with ".."' : `${what} ${show(raw)} climbs out of the target with ".."`);
    parts.push(part);
  }
  return parts.join("/");
}

/** True when a symlink target leaves its directory ("/" or a ".." component). */
function leavesDir(target: string): boolean {
  return target.startsWith("/") || target === ".." || target.startsWith("../") || target.endsWith("/..") || target.includes("/../");
}

// ---------------------------------------------------------------------------
// Header parsing.

const BLOCK = 512;

/** A member of the archive, with GNU long names and pax records already applied. */
interface Entry {
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
}

const T_FILE = 0x30; // '0'
const T_OLDFILE = 0; // '\0', pre-POSIX regular file
const T_LINK = 0x31; // '1'
const T_SYMLINK = 0x32; // '2'
const T_CHR = 0x33; // '3'
const T_BLK = 0x34; // '4'
const T_DIR = 0x35; // '5'
const T_FIFO = 0x36; // '6'
const T_CONTIG = 0x37; // '7', a regular file everywhere that matters
const T_PAX = 0x78; // 'x'
const T_PAX_SOLARIS = 0x58; // 'X', same as 'x'
const T_PAX_GLOBAL = 0x67; // 'g'
const T_GNU_LONGNAME = 0x4c; // 'L'
const T_GNU_LONGLINK = 0x4b; // 'K'
const T_GNU_DUMPDIR = 0x44; // 'D', a directory followed by a listing of it
const T_GNU_SPARSE = 0x53; // 'S'
const T_GNU_VOLHDR = 0x56; // 'V', a volume label: nothing to extract
const T_GNU_MULTIVOL = 0x4d; // 'M'
const T_GNU_NAMES = 0x4e; // 'N', obsolete GNU rename records

/** Archive metadata records are buffered whole; this bounds their size. */
const MAX_META = 8 << 20;

/** A NUL-terminated string field, latin1-decoded. */
function field(h: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && h[end] !== 0) end++;
  return h.toString("latin1", off, end);
}

/** An octal number field, or a GNU base-256 one (high bit of the first byte set). */
function number(h: Buffer, off: number, len: number, what: string, entry: () => string): number {
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
function checkHeader(h: Buffer): "ok" | "end" | "bad" {
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
function parsePax(data: Buffer, into: Map<string, string>, where: () => string): void {
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
function paxValue(key: string, local: Map<string, string>, global: Map<string, string>): string | undefined {
  const v = local.get(key) ?? global.get(key);
  return v === "" ? undefined : v;
}

function paxInteger(v: string, key: string, entry: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new TarError(`malformed pax ${key} "${v}" for entry ${show(entry)}`);
  return n;
}

function paxTime(v: string, key: string, entry: string): number {
  if (!/^-?\d+(\.\d+)?$/.test(v)) throw new TarError(`malformed pax ${key} "${v}" for entry ${show(entry)}`);
  return Number(v);
}

function hasSparse(map: Map<string, string>): boolean {
  for (const key of map.keys()) if (key.startsWith("GNU.sparse.")) return true;
  return false;
}

// ---------------------------------------------------------------------------
// The reader: a push parser fed with chunks of any size.

/** What the bytes of the current member's body are for. */
const BODY_SKIP = 0;
const BODY_FILE = 1;
const BODY_META = 2;

class TarReader {
  /** true once the end-of-archive block has been read */
  ended = false;
  private readonly header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** body bytes of the current member still to come, then its padding */
  private remaining = 0;
  private padding = 0;
  private body = BODY_SKIP;
  private meta: Buffer | null = null;
  private metaFill = 0;
  private metaType = 0;
  /** archive offset of the current header, for messages */
  private offset = 0;
  /** archive bytes in the chunks before the current one */
  private consumed = 0;
  private lastName = "";
  private pax = new Map<string, string>();
  private readonly globalPax = new Map<string, string>();
  private longName: string | undefined;
  private longLink: string | undefined;

  constructor(private readonly out: Extractor) {}

  /** Consumes a chunk (not kept after return); true when the archive has ended. */
  push(input: Uint8Array): boolean {
    const chunk = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const len = chunk.length;
    let off = 0;
    while (off < len) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, len - off);
        this.consumeBody(chunk, off, n);
        off += n;
        this.remaining -= n;
        if (this.remaining === 0) this.endBody();
      } else if (this.padding > 0) {
        const n = Math.min(this.padding, len - off);
        off += n;
        this.padding -= n;
      } else if (this.headerFill === 0 && len - off >= BLOCK) {
        // The common case: a whole header inside the chunk, parsed in place.
        off += BLOCK;
        if (this.onHeader(chunk.subarray(off - BLOCK, off), this.consumed + off - BLOCK)) return this.end();
      } else {
        const n = Math.min(BLOCK - this.headerFill, len - off);
        chunk.copy(this.header, this.headerFill, off, off + n);
        this.headerFill += n;
        off += n;
        if (this.headerFill < BLOCK) break;
        this.headerFill = 0;
        if (this.onHeader(this.header, this.consumed + off - BLOCK)) return this.end();
      }
    }
    this.consumed += len;
    return false;
  }

  /** At the end of the input: throws if it stopped inside a member. */
  finish(): void {
    if (this.ended) return;
    if (this.remaining > 0 || this.headerFill > 0)
      throw new TarError(`the archive is truncated: it ends inside ${this.remaining > 0 ? `entry ${show(this.lastName)}` : "a header"}`);
  }

  private end(): boolean {
    this.ended = true;
    return true;
  }

  private where = (): string => `at byte ${this.offset}${this.lastName ? `, after entry ${show(this.lastName)}` : ""}`;

  /** Handles one header block; true at the end-of-archive marker. */
  private onHeader(h: Buffer, offset: number): boolean {
    this.offset = offset;
    const check = checkHeader(h);
    if (check === "end") return true;
    if (check === "bad")
      throw new TarError(offset === 0 ? "this is not a tar archive: its first block is not a tar header" : `corrupt tar header ${this.where()}: bad checksum`);
    const type = h[156] ?? 0;
    const size = number(h, 124, 12, "size", this.where);
    if (type === T_PAX || type === T_PAX_SOLARIS || type === T_PAX_GLOBAL || type === T_GNU_LONGNAME || type === T_GNU_LONGLINK) {
      this.startMeta(type, size);
      return false;
    }
    const entry = this.decode(h, type, size);
    this.lastName = entry.raw;
    // GNU tar skips volume labels and members with an empty name.
    const skip = type === T_GNU_VOLHDR || entry.raw === "";
    const wantsData = !skip && this.out.begin(entry);
    // Directories carry no data whatever their size field says (GNU tar); every
    // other member's data is skipped unless the extractor writes it.
    const dataSize = type === T_DIR ? 0 : entry.size;
    this.body = wantsData ? BODY_FILE : BODY_SKIP;
    this.remaining = dataSize;
    this.padding = (BLOCK - (dataSize % BLOCK)) % BLOCK;
    if (dataSize === 0) this.endBody();
    return false;
  }

  private startMeta(type: number, size: number): void {
    if (size > MAX_META) throw new TarError(`a metadata record of ${size} bytes ${this.where()} is larger than the limit of ${MAX_META}`);
    this.metaType = type;
    this.meta = Buffer.allocUnsafe(size);
    this.metaFill = 0;
    this.body = BODY_META;
    this.remaining = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) this.endBody();
  }

  private consumeBody(chunk: Buffer, off: number, n: number): void {
    if (this.body === BODY_FILE) this.out.write(chunk, off, n);
    else if (this.body === BODY_META && this.meta) {
      chunk.copy(this.meta, this.metaFill, off, off + n);
      this.metaFill += n;
    }
  }

  private endBody(): void {
    if (this.body === BODY_FILE) this.out.endFile();
    else if (this.body === BODY_META && this.meta) this.endMeta(this.meta);
    this.body = BODY_SKIP;
    this.meta = null;
  }

  private endMeta(data: Buffer): void {
    switch (this.metaType) {
      case T_PAX_GLOBAL:
        parsePax(data, this.globalPax, this.where);
        break;
      case T_GNU_LONGNAME:
        this.longName = field(data, 0, data.length);
        break;
      case T_GNU_LONGLINK:
        this.longLink = field(data, 0, data.length);
        break;
      default:
        parsePax(data, this.pax, this.where);
    }
  }

  /** Builds the entry from the header plus pending long names and pax records. */
  private decode(h: Buffer, type: number, headerSize: number): Entry {
    let name = this.longName ?? ustarName(h);
    let linkname = this.longLink ?? field(h, 157, 100);
    const pax = this.pax;
    const global = this.globalPax;
    this.longName = undefined;
    this.longLink = undefined;
    this.pax = new Map();
    name = paxValue("path", pax, global) ?? name;
    linkname = paxValue("linkpath", pax, global) ?? linkname;
    const entry = (): string => `entry ${show(name)}`;
    if (type === T_GNU_SPARSE || hasSparse(pax) || hasSparse(global))
      refuse(paxValue("GNU.sparse.name", pax, global) ?? name, "sparse files are not supported");
    if (type === T_GNU_MULTIVOL) refuse(name, "it continues from another volume of a multi-volume archive");
    if (type === T_GNU_NAMES) refuse(name, "obsolete GNU rename records are not supported");
    const px = (key: string): string | undefined => paxValue(key, pax, global);
    const size = px("size");
    const uid = px("uid");
    const gid = px("gid");
    const mtime = px("mtime");
    // A regular file whose name ends in "/" is a directory (pre-POSIX tars).
    const isOldDir = (type === T_FILE || type === T_OLDFILE || type === T_CONTIG) && name.endsWith("/");
    return {
      raw: name,
      path: name === "" || type === T_GNU_VOLHDR ? "" : normalize(name, name),
      type: isOldDir ? T_DIR : type,
      mode: number(h, 100, 8, "mode", entry) & 0o7777,
      uid: uid === undefined ? number(h, 108, 8, "uid", entry) : paxInteger(uid, "uid", name),
      gid: gid === undefined ? number(h, 116, 8, "gid", entry) : paxInteger(gid, "gid", name),
      size: size === undefined ? headerSize : paxInteger(size, "size", name),
      mtime: mtime === undefined ? number(h, 136, 12, "mtime", entry) : paxTime(mtime, "mtime", name),
      linkname,
      devmajor: type === T_CHR || type === T_BLK ? number(h, 329, 8, "devmajor", entry) : 0,
      devminor: type === T_CHR || type === T_BLK ? number(h, 337, 8, "devminor", entry) : 0,
    };
  }
}

/** The name field, with the POSIX ustar prefix when there is one. */
function ustarName(h: Buffer): string {
  const name = field(h, 0, 100);
  // "ustar\0" is POSIX; GNU's "ustar  \0" uses the prefix bytes for other things.
  const posix = h[257] === 0x75 && h[258] === 0x73 && h[259] === 0x74 && h[260] === 0x61 && h[261] === 0x72 && h[262] === 0;
  if (!posix || h[345] === 0) return name;
  return `${field(h, 345, 155)}/${name}`;
}

// ---------------------------------------------------------------------------
// The extractor: entries to files.

/** What the extractor created at a path. */
const K_DIR = 1;
const K_FILE = 2; // regular file, hardlink, device node or FIFO
const K_SYMLINK = 3;

/**
 * A directory whose owner, mode and mtime are set once extraction has left it:
 * creating entries inside changes its mtime, and a read-only mode would get in
 * the way. This follows GNU tar's delayed_set_stat list: a stack of directories
 * in extraction order, each popped (and applied) as soon as an entry outside it
 * comes, except those marked afterLinks, which wait for the very end.
 */
interface DirRecord {
  path: string;
  /** created only as the parent of an entry: nothing to apply */
  implicit: boolean;
  /** GNU tar applies these after its delayed symlinks, i.e. last */
  afterLinks: boolean;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

const O_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const O_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const NON_ASCII = /[\u0080-\uffff]/;

/** Negative times must be given as a Date: Bun reads a negative number as "now". */
function time(seconds: number): number | Date {
  return seconds >= 0 ? seconds : new Date(seconds * 1000);
}

class Extractor {
  private readonly kinds = new Map<string, number>();
  private readonly stack: DirRecord[] = [];
  /** device nodes skipped because we are not root, so hardlinks to them are skipped too */
  private readonly skipped = new Set<string>();
  /** may make device nodes: root, and not a user namespace's (where mknod is refused) */
  private readonly isRoot = process.getuid?.() === 0 && !inChildUserNamespace();
  /** atime for everything: GNU tar leaves it at the extraction time */
  private readonly now = Date.now() / 1000;
  private fd = -1;
  private file: Entry | null = null;
  private destPrefix: Buffer | undefined;

  constructor(
    private readonly dest: string,
    private readonly sameOwner: boolean,
  ) {
    this.kinds.set("", K_DIR);
  }

  /** Creates the entry; true when it is a regular file waiting for its data. */
  begin(e: Entry): boolean {
    this.leaveDirectories(e.path);
    switch (e.type) {
      case T_DIR:
      case T_GNU_DUMPDIR:
        this.makeDir(e);
        return false;
      case T_SYMLINK:
        this.makeSymlink(e);
        return false;
      case T_LINK:
        this.makeHardlink(e);
        return false;
      case T_CHR:
      case T_BLK:
      case T_FIFO:
        this.makeNode(e);
        return false;
      default:
        // '0', '\0', '7' and, as GNU tar does, unknown types: regular files.
        return this.openFile(e);
    }
  }

  write(chunk: Buffer, off: number, n: number): void {
    let done = 0;
    try {
      while (done < n) done += writeSync(this.fd, chunk, off + done, n - done);
    } catch (err) {
      throw this.failed(this.file, err);
    }
  }

  /** After a regular file's data: times, owner, then mode (chown clears setuid). */
  endFile(): void {
    const e = this.file;
    const fd = this.fd;
    if (!e) return;
    this.file = null;
    this.fd = -1;
    try {
      futimesSync(fd, this.now, time(e.mtime));
      if (this.sameOwner) fchownSync(fd, e.uid, e.gid);
      fchmodSync(fd, e.mode);
    } catch (err) {
      throw this.failed(e, err);
    } finally {
      closeSync(fd);
    }
  }

  /** At the end of the archive: the metadata of the directories still pending. */
  finish(): void {
    while (this.stack.length > 0) this.applyDir(this.stack.pop() as DirRecord);
  }

  /** Closes the file being written, if extraction stopped in the middle of one. */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.file = null;
  }

  /** The path for fs calls: a string while the name is ASCII, else its exact bytes. */
  private fsPath(path: string): string | Buffer {
    if (path === "") return this.dest;
    if (!NON_ASCII.test(path)) return `${this.dest}/${path}`;
    // dest is an ordinary (UTF-8) string, path a binary one: encode each its own way.
    this.destPrefix ??= Buffer.from(`${this.dest}/`);
    return Buffer.concat([this.destPrefix, Buffer.from(path, "latin1")]);
  }

  private failed(e: Entry | null, err: unknown): Error {
    if (err instanceof TarError) return err;
    const text = err instanceof Error ? err.message : String(err);
    return new Error(`cannot extract ${e ? show(e.raw) : "the archive"}: ${text}`, { cause: err });
  }

  private openFile(e: Entry): boolean {
    if (e.path === "") refuse(e.raw, "only a directory can stand for the target directory itself");
    this.prepare(e);
    try {
      // Owner-only until chown: nobody else may open it in between (GNU tar does the same).
      this.fd = openSync(this.fsPath(e.path), O_FILE, this.sameOwner ? e.mode & 0o700 : e.mode & 0o777);
    } catch (err) {
      throw this.failed(e, err);
    }
    this.file = e;
    this.kinds.set(e.path, K_FILE);
    if (e.size > 0) return true;
    this.endFile();
    return false;
  }

  private makeDir(e: Entry): void {
    if (e.path !== "") {
      this.prepare(e, true);
      if (this.kinds.get(e.path) !== K_DIR) {
        // Owner-only until the real mode is set, like GNU tar; writable by us even then.
        this.attempt(e, () => mkdirSync(this.fsPath(e.path), (e.mode & 0o700) | (this.isRoot ? 0 : 0o300)));
        this.kinds.set(e.path, K_DIR);
      }
    }
    this.delayDir(e);
  }

  private makeSymlink(e: Entry): void {
    if (e.path === "") refuse(e.raw, "only a directory can stand for the target directory itself");
    if (e.linkname.includes("\0")) refuse(e.raw, "its symlink target contains a NUL byte");
    this.prepare(e);
    const path = this.fsPath(e.path);
    const target = NON_ASCII.test(e.linkname) ? Buffer.from(e.linkname, "latin1") : e.linkname;
    this.attempt(e, () => {
      symlinkSync(target, path);
      lutimesSync(path, this.now, time(e.mtime));
      if (this.sameOwner) lchownSync(path, e.uid, e.gid);
    });
    this.kinds.set(e.path, K_SYMLINK);
    // GNU tar creates such links only at the end, so their directories' metadata
    // waits for them.
    if (leavesDir(e.linkname)) this.markAfterLinks(e.path);
  }

  private makeHardlink(e: Entry): void {
    if (e.path === "") refuse(e.raw, "only a directory can stand for the target directory itself");
    const target = normalize(e.linkname, e.raw, "its hardlink target");
    if (this.skipped.has(target)) return;
    const kind = this.kinds.get(target);
    if (kind === undefined) refuse(e.raw, `its hardlink target ${show(e.linkname)} is not in the archive before it`);
    if (kind === K_DIR) refuse(e.raw, `its hardlink target ${show(e.linkname)} is a directory`);
    if (target === e.path) return; // a link to itself: already there
    this.prepare(e);
    this.attempt(e, () => linkSync(this.fsPath(target), this.fsPath(e.path)));
    // A link to a symlink is a symlink: entries below it must be refused too.
    this.kinds.set(e.path, kind);
  }

  private makeNode(e: Entry): void {
    if (e.path === "") refuse(e.raw, "only a directory can stand for the target directory itself");
    const device = e.type !== T_FIFO;
    if (device && !this.isRoot) {
      // Only root may create device nodes; GNU tar warns and goes on.
      this.skipped.add(e.path);
      return;
    }
    this.prepare(e);
    const type = e.type === T_CHR ? S_IFCHR : e.type === T_BLK ? S_IFBLK : S_IFIFO;
    const path = this.fsPath(e.path);
    this.attempt(e, () => {
      mknod(path, type | (this.sameOwner ? e.mode & 0o700 : e.mode & 0o777), device ? makedev(e.devmajor, e.devminor) : 0);
      // The node was just made by us at a path whose parents are directories we
      // made: these path-based calls cannot land anywhere else.
      lutimesSync(path, this.now, time(e.mtime));
      if (this.sameOwner) lchownSync(path, e.uid, e.gid);
      chmodSync(path, e.mode);
    });
    this.kinds.set(e.path, K_FILE);
  }

  private attempt(e: Entry, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      throw this.failed(e, err);
    }
  }

  /**
   * Makes way for the entry: its parent directories exist, none of them is a
   * symlink, and whatever the archive put at its path before is removed, except
   * a directory that a directory entry keeps.
   */
  private prepare(e: Entry, keepDir = false): void {
    this.ensureParent(e.path, e);
    const kind = this.kinds.get(e.path);
    if (kind === undefined || (kind === K_DIR && keepDir)) return;
    if (kind === K_DIR) this.removeDir(e);
    else this.attempt(e, () => unlinkSync(this.fsPath(e.path)));
    this.kinds.delete(e.path);
  }

  private ensureParent(path: string, e: Entry): void {
    const slash = path.lastIndexOf("/");
    if (slash < 0) return;
    const parent = path.slice(0, slash);
    const kind = this.kinds.get(parent);
    // A directory's own parents are all directories: nothing can replace one
    // while it exists (see removeDir), so one lookup usually settles it.
    if (kind === K_DIR) return;
    if (kind === K_SYMLINK) refuse(e.raw, `its parent ${show(parent)} is a symlink from the archive`);
    if (kind !== undefined) refuse(e.raw, `its parent ${show(parent)} is not a directory`);
    this.ensureParent(parent, e);
    this.attempt(e, () => mkdirSync(this.fsPath(parent), 0o777));
    this.kinds.set(parent, K_DIR);
    this.stack.push({ path: parent, implicit: true, afterLinks: false, mode: 0, uid: 0, gid: 0, mtime: 0 });
  }

  /** Replaces a directory by a non-directory: only an empty one, as GNU tar. */
  private removeDir(e: Entry): void {
    try {
      rmdirSync(this.fsPath(e.path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOTEMPTY") refuse(e.raw, "it would replace a directory that is not empty");
      throw this.failed(e, err);
    }
    const index = this.stack.findIndex((r) => r.path === e.path);
    if (index >= 0) this.stack.splice(index, 1);
  }

  /** Applies the records of the directories the archive has left (see DirRecord). */
  private leaveDirectories(path: string): void {
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top || top.afterLinks || isAncestor(top.path, path)) return;
      this.stack.pop();
      this.applyDir(top);
    }
  }

  private delayDir(e: Entry): void {
    let record = this.stack.find((r) => r.path === e.path);
    if (!record) {
      record = { path: e.path, implicit: false, afterLinks: false, mode: 0, uid: 0, gid: 0, mtime: 0 };
      this.stack.push(record);
    }
    record.implicit = false;
    record.mode = e.mode;
    record.uid = e.uid;
    record.gid = e.gid;
    record.mtime = e.mtime;
    // GNU tar applies the "." entry last.
    if (e.path === "") this.markFrom(this.stack.indexOf(record));
  }

  /** A symlink leaving its directory: its parent's record (and the ancestors under it) wait. */
  private markAfterLinks(path: string): void {
    const slash = path.lastIndexOf("/");
    const parent = slash < 0 ? "" : path.slice(0, slash);
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const r = this.stack[i] as DirRecord;
      if (!r.afterLinks && r.path === parent) {
        this.markFrom(i);
        return;
      }
    }
  }

  private markFrom(index: number): void {
    for (let i = index; i >= 0; i--) {
      const r = this.stack[i] as DirRecord;
      if (r.afterLinks) return;
      r.afterLinks = true;
    }
  }

  /** Sets a directory's times, owner and mode through a no-follow descriptor. */
  private applyDir(r: DirRecord): void {
    if (r.implicit) return; // made with the umask's mode, which stays
    let fd = -1;
    try {
      fd = openSync(this.fsPath(r.path), O_DIR);
      futimesSync(fd, this.now, time(r.mtime));
      if (this.sameOwner) fchownSync(fd, r.uid, r.gid);
      fchmodSync(fd, r.mode);
    } catch (err) {
      throw new Error(`cannot set the metadata of ${r.path === "" ? "the target directory" : show(r.path)}: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }
}

function isAncestor(dir: string, path: string): boolean {
  if (dir === "") return path !== "";
  return path.length > dir.length && path.charCodeAt(dir.length) === 0x2f && path.startsWith(dir);
}

// ---------------------------------------------------------------------------
// Sources: the decompressed archive, chunk by chunk.

interface Source {
  chunks: AsyncIterable<Uint8Array>;
  /** After the last chunk: throws a TarError if the decompressor failed. */
  done(): Promise<void>;
  /** Stops reading (early end, or an error) and releases everything. */
  close(): void;
}

type Format = "tar" | "gzip" | "zstd";

/** The compression, from the first bytes: extensions lie, magic numbers do not. */
function sniff(head: Buffer, tarball: string): Format {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  if (head[0] === 0xfd && head.toString("latin1", 1, 6) === "7zXZ\0")
    throw new TarError(`${show(tarball)} is compressed with xz, which is not supported: decompress it or use gzip or zstd`);
  if (head.toString("latin1", 0, 3) === "BZh")
    throw new TarError(`${show(tarball)} is compressed with bzip2, which is not supported: decompress it or use gzip or zstd`);
  return "tar";
}

const READ_SIZE = 256 << 10;

/**
 * The file's bytes after `head` (bytes already read from it). With `reuse`, one
 * buffer serves every chunk: right for the TarReader, which copies what it keeps,
 * but not for a stream that queues chunks.
 */
async function* readChunks(fd: number, head: Buffer, reuse: boolean): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  let buf = Buffer.allocUnsafe(READ_SIZE);
  for (;;) {
    const n = readSync(fd, buf, 0, READ_SIZE, null);
    if (n === 0) return;
    yield buf.subarray(0, n);
    if (!reuse) buf = Buffer.allocUnsafe(READ_SIZE);
  }
}

function fileSource(fd: number, head: Buffer): Source {
  return { chunks: readChunks(fd, head, true), done: async () => {}, close: () => closeSync(fd) };
}

/**
 * `zstd -dc` reading the tarball: decompression runs on another core, as with
 * GNU tar. Bun reads the pipe ahead of us, but by a bounded amount (peak RSS grew
 * by ~35 MB for a 300 MB archive and ~45 MB for a 3.6 GB one).
 */
function toolSource(fd: number, tool: string, format: Format): Source {
  const proc = Bun.spawn([tool, "-dc"], { stdin: fd, stdout: "pipe", stderr: "pipe" });
  closeSync(fd);
  return {
    chunks: proc.stdout,
    async done() {
      const code = await proc.exited;
      if (code === 0) return;
      const text = (await new Response(proc.stderr).text()).trim().split("\n")[0] ?? "";
      throw new TarError(`the ${format} data is corrupt: ${text || `${tool} exited with status ${code}`}`);
    },
    close() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill();
    },
  };
}

/** node:zlib in this process; its async streams keep at most a few chunks in flight. */
function zlibSource(fd: number, head: Buffer, format: Format): Source {
  const input = Readable.from(readChunks(fd, head, false), { objectMode: false });
  const output = format === "gzip" ? createGunzip({ chunkSize: 1 << 18 }) : createZstdDecompress({ chunkSize: 1 << 18 });
  input.on("error", (err) => output.destroy(err));
  input.pipe(output);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of output) yield chunk as Buffer;
    } catch (err) {
      throw new TarError(`the ${format} data is corrupt: ${(err as Error).message}`);
    }
  }
  return {
    chunks: chunks(),
    done: async () => {},
    close() {
      output.destroy();
      input.destroy();
      closeSync(fd);
    },
  };
}

/**
 * The first bytes, for sniff(). A regular file is read with pread, leaving its
 * offset at 0 for whoever reads it next, and nothing is returned to replay; a
 * pipe cannot seek, so what was read is returned to go first.
 */
function readHead(fd: number): { head: Buffer; replay: Buffer } {
  const head = Buffer.alloc(6);
  if (fstatSync(fd).isFile()) {
    const n = readSync(fd, head, 0, head.length, 0);
    return { head: head.subarray(0, n), replay: Buffer.alloc(0) };
  }
  let n = 0;
  for (let r = 1; r > 0 && n < head.length; n += r) r = readSync(fd, head, n, head.length - n, null);
  return { head: head.subarray(0, n), replay: head.subarray(0, n) };
}

/**
 * gzip is decompressed in this process: Bun's zlib did it about twice as fast as
 * gzip(1) (0.45 s against 0.9 s for a 170 MB rootfs) and off the JS thread. zstd
 * goes to zstd(1) when it is installed (0.28 s against 0.6 s in process), except
 * from a pipe, whose first bytes this process has already consumed.
 */
function openSource(tarball: string): Source {
  const fd = openSync(tarball, "r");
  try {
    const { head, replay } = readHead(fd);
    const format = sniff(head, tarball);
    if (format === "tar") return fileSource(fd, replay);
    const tool = format === "zstd" && replay.length === 0 ? Bun.which("zstd", { PATH: process.env.PATH ?? "" }) : null;
    return tool ? toolSource(fd, tool, format) : zlibSource(fd, replay, format);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

function checkEmpty(dest: string): void {
  // Safety rests on knowing everything in dest: it must start empty.
  if (readdirSync(dest).length > 0) throw new Error(`cannot extract into ${JSON.stringify(dest)}: the directory is not empty`);
}

/**
 * Extracts a tarball (plain, gzip or zstd, whatever its name says) into `dest`,
 * an existing empty directory. With `sameOwner` (the default as root) files get
 * the numeric owners stored in the archive. Throws TarError for an unsafe or
 * malformed archive; dest may then hold part of it, and the caller removes it.
 */
export async function extractTar(tarball: string, dest: string, opts: { sameOwner?: boolean } = {}): Promise<void> {
  checkEmpty(dest);
  const extractor = new Extractor(dest, opts.sameOwner ?? process.getuid?.() === 0);
  const reader = new TarReader(extractor);
  const source = openSource(tarball);
  try {
    for await (const chunk of source.chunks) if (reader.push(chunk)) break;
    if (!reader.ended) {
      await source.done();
      reader.finish();
    }
    extractor.finish();
  } finally {
    extractor.close();
    source.close();
  }
}
