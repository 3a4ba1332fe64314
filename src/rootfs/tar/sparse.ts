/**
 * GNU sparse files: a file with holes is stored as its data segments plus a
 * map of where they go (offset, length pairs) and the file's real size. Four
 * encodings of the map exist, all written by GNU tar:
 *   - old GNU (type 'S', --format=gnu): 4 pairs in the header, then extension
 *     blocks of 21 pairs each while the "isextended" byte is set;
 *   - pax 0.0: repeated GNU.sparse.offset / GNU.sparse.numbytes records;
 *   - pax 0.1: GNU.sparse.map="off,len,off,len,...";
 *   - pax 1.0 (GNU.sparse.major=1, minor=0): the map in decimal lines at the
 *     start of the data, padded to a block, the real name in GNU.sparse.name.
 * The extractor makes the file with ftruncate(realSize) and writes each segment
 * at its offset, so the holes stay holes.
 */
import { MAX_META, number } from "./format.ts";
import { refuse, TarError } from "./policy.ts";

export interface Sparse {
  /** the file's size once extracted */
  realSize: number;
  /** offset, length, offset, length, ... in the order the data comes */
  map: number[];
}

/** Bounds the pairs of one map, whose memory would otherwise grow with the archive. */
const MAX_PAIRS = Math.floor(MAX_META / 24);

/** Reads `count` (offset, numbytes) pairs of 12-byte numbers at `off`, stopping at an empty one. */
function gnuPairs(h: Buffer, off: number, count: number, into: number[], entry: string): void {
  const what = (): string => `entry ${JSON.stringify(entry)}`;
  for (let i = 0; i < count; i++) {
    const at = off + i * 24;
    if (h[at] === 0) return;
    into.push(number(h, at, 12, "sparse offset", what), number(h, at + 12, 12, "sparse length", what));
  }
  if (into.length / 2 > MAX_PAIRS) refuse(entry, `its sparse map has more than ${MAX_PAIRS} segments`);
}

/** The old GNU header's part of the map; `extended` says extension blocks follow. */
export function gnuHeaderSparse(h: Buffer, entry: string): { sparse: Sparse; extended: boolean } {
  const map: number[] = [];
  gnuPairs(h, 386, 4, map, entry);
  const realSize = number(h, 483, 12, "sparse real size", () => `entry ${JSON.stringify(entry)}`);
  return { sparse: { realSize, map }, extended: h[482] !== 0 };
}

/** One extension block: 21 more pairs; true when another block follows. */
export function gnuExtensionSparse(h: Buffer, sparse: Sparse, entry: string): boolean {
  gnuPairs(h, 0, 21, sparse.map, entry);
  return h[504] !== 0;
}

function integer(v: string | undefined, key: string, entry: string): number {
  const n = v !== undefined && /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new TarError(`malformed pax ${key} "${v ?? ""}" for entry ${JSON.stringify(entry)}`);
  return n;
}

function list(v: string, key: string, entry: string): number[] {
  return v === "" ? [] : v.split(",").map((x) => integer(x, key, entry));
}

/**
 * The sparse encoding in an entry's pax records (see the top of this file):
 * undefined when there is none; `inData` for 1.0, whose map is read from the data.
 * Repeated 0.0 offset/numbytes records arrive comma-joined (see parsePax).
 */
export function paxSparse(px: (key: string) => string | undefined, entry: string): { sparse: Sparse; inData: boolean } | undefined {
  const major = px("GNU.sparse.major");
  if (major !== undefined) {
    const minor = px("GNU.sparse.minor");
    if (major !== "1" || minor !== "0") refuse(entry, `sparse format ${major}.${minor ?? "?"} is not supported (only 0.0, 0.1 and 1.0)`);
    return { sparse: { realSize: integer(px("GNU.sparse.realsize"), "GNU.sparse.realsize", entry), map: [] }, inData: true };
  }
  const realSize = (): number => integer(px("GNU.sparse.size") ?? px("GNU.sparse.realsize"), "GNU.sparse.size", entry);
  const map01 = px("GNU.sparse.map");
  if (map01 !== undefined) return { sparse: { realSize: realSize(), map: list(map01, "GNU.sparse.map", entry) }, inData: false };
  const offsets = px("GNU.sparse.offset");
  const lengths = px("GNU.sparse.numbytes");
  if (offsets !== undefined || lengths !== undefined) {
    const o = list(offsets ?? "", "GNU.sparse.offset", entry);
    const l = list(lengths ?? "", "GNU.sparse.numbytes", entry);
    if (o.length !== l.length) refuse(entry, "its sparse map has unpaired GNU.sparse.offset and GNU.sparse.numbytes records");
    return { sparse: { realSize: realSize(), map: o.flatMap((x, i) => [x, l[i] as number]) }, inData: false };
  }
  return undefined;
}

/**
 * The 1.0 map at the start of the data: a count, then that many offset and length
 * pairs, one decimal number per line, padded to a block. Fed the data as it
 * comes; parses each line once.
 */
export class DataMapParser {
  private readonly numbers: number[] = [];
  private count = -1;
  /** where the next line starts in the data fed so far */
  private start = 0;

  constructor(private readonly entry: string) {}

  /** `data` is everything fed so far; the map when whole, else null (more to come). */
  parse(data: Buffer): number[] | null {
    if (data.length > MAX_META) refuse(this.entry, `its sparse map is larger than ${MAX_META} bytes`);
    for (;;) {
      if (this.count >= 0 && this.numbers.length === 2 * this.count) return this.numbers;
      const nl = data.indexOf(0x0a, this.start);
      if (nl < 0) return null;
      const v = integer(data.toString("latin1", this.start, nl), "sparse map", this.entry);
      this.start = nl + 1;
      if (this.count >= 0) this.numbers.push(v);
      else if (v > MAX_PAIRS) refuse(this.entry, `its sparse map has more than ${MAX_PAIRS} segments`);
      else this.count = v;
    }
  }
}

/** Every segment inside the file, and the segments' lengths adding up to the data stored. */
export function checkSparse(s: Sparse, dataSize: number, entry: string): void {
  if (s.realSize < 0) refuse(entry, `its sparse real size ${s.realSize} is negative`);
  let total = 0;
  for (let i = 0; i < s.map.length; i += 2) {
    const off = s.map[i] as number;
    const len = s.map[i + 1] as number;
    // base-256 header numbers may be negative
    if (off < 0 || len < 0) refuse(entry, "its sparse map has a negative offset or length");
    if (off + len > s.realSize) refuse(entry, `its sparse map puts data at ${off}+${len}, past its size of ${s.realSize}`);
    total += len;
  }
  if (total !== dataSize) refuse(entry, `its sparse map holds ${total} bytes of data but the archive stores ${dataSize}`);
}
