/**
 * The reader: a push parser fed with chunks of any size, so a header or a file's
 * data may be split across chunks anywhere. It applies GNU long names and pax
 * records to the entry that follows them and hands entries and file data to the
 * Extractor.
 */
import {
  BLOCK,
  checkHeader,
  type Entry,
  field,
  hasSparse,
  MAX_META,
  number,
  parsePax,
  paxInteger,
  paxTime,
  paxValue,
  paxXattrs,
  T_BLK,
  T_CHR,
  T_CONTIG,
  T_DIR,
  T_FILE,
  T_GNU_LONGLINK,
  T_GNU_LONGNAME,
  T_GNU_MULTIVOL,
  T_GNU_NAMES,
  T_GNU_SPARSE,
  T_GNU_VOLHDR,
  T_OLDFILE,
  T_PAX,
  T_PAX_GLOBAL,
  T_PAX_SOLARIS,
  ustarName,
} from "./format.ts";
import { normalize, refuse, show, TarError } from "./policy.ts";
import type { Extractor } from "./writer.ts";

/** What the bytes of the current member's body are for. */
const BODY_SKIP = 0;
const BODY_FILE = 1;
const BODY_META = 2;

export class TarReader {
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
      xattrs: pax.size > 0 ? paxXattrs(pax, name) : undefined,
    };
  }
}
