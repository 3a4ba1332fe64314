/**
 * Walks the frame and block headers of a zstd stream, without decompressing, to
 * tell a complete stream from a truncated one: Bun's node:zlib zstd decoder ends
 * quietly at the end of its input, even in the middle of a frame (zstd(1) says
 * "truncated input"). Block contents are skipped by their sizes, so this costs
 * nothing next to the decompression.
 */

const MAGIC = 0xfd2fb528;

/** States: reading a fixed-size header of `need` bytes, or skipping `skip` bytes. */
const S_MAGIC = 0; // 4 bytes: a frame's or a skippable frame's magic number
const S_FHD = 1; // 1 byte: frame header descriptor
const S_FRAME_REST = 2; // window descriptor, dictionary id and content size
const S_SKIPPABLE_SIZE = 3; // 4 bytes
const S_BLOCK = 4; // 3 bytes: block header
const S_SKIP = 5; // block content, checksum or skippable frame content

export class ZstdFrameCheck {
  private state = S_MAGIC;
  private readonly buf = Buffer.alloc(8);
  private fill = 0;
  private need = 4;
  private skip = 0;
  private checksum = false;
  /** after the skip: expect another block (false: the frame ends, maybe with a checksum) */
  private moreBlocks = false;
  private atChecksum = false;
  /** true between frames, where the stream may end */
  private boundary = true;

  /** Feeds the next compressed bytes; throws on a malformed header. */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === S_SKIP) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        if (this.skip === 0) this.afterSkip();
        continue;
      }
      this.buf[this.fill++] = chunk[i++] as number;
      if (this.fill === this.need) {
        this.fill = 0;
        this.onHeader();
      }
    }
  }

  /** At the end of the input: throws unless the stream ended between frames. */
  end(): void {
    if (!this.boundary || this.fill > 0) throw new Error("the stream is truncated");
  }

  private expect(state: number, need: number): void {
    this.state = state;
    this.need = need;
  }

  private skipThen(n: number, moreBlocks: boolean): void {
    this.moreBlocks = moreBlocks;
    this.skip = n;
    this.state = S_SKIP;
    if (n === 0) this.afterSkip();
  }

  private onHeader(): void {
    const b = this.buf;
    switch (this.state) {
      case S_MAGIC: {
        const magic = b.readUInt32LE(0);
        this.boundary = false;
        if (magic === MAGIC) this.expect(S_FHD, 1);
        else if ((magic & 0xfffffff0) === 0x184d2a50) this.expect(S_SKIPPABLE_SIZE, 4);
        else throw new Error("a frame does not start with the zstd magic number");
        return;
      }
      case S_FHD: {
        const d = b[0] as number;
        if (d & 0x08) throw new Error("a frame header has its reserved bit set");
        const fcsFlag = d >> 6;
        const single = (d & 0x20) !== 0;
        this.checksum = (d & 0x04) !== 0;
        const fcs = fcsFlag === 0 ? (single ? 1 : 0) : 1 << fcsFlag;
        const rest = (single ? 0 : 1) + [0, 1, 2, 4][d & 3]! + fcs;
        if (rest === 0) this.expect(S_BLOCK, 3);
        else this.expect(S_FRAME_REST, rest);
        return;
      }
      case S_FRAME_REST:
        this.expect(S_BLOCK, 3);
        return;
      case S_SKIPPABLE_SIZE:
        this.atChecksum = true; // the frame ends after its content
        this.checksum = false;
        this.skipThen(b.readUInt32LE(0), false);
        return;
      case S_BLOCK: {
        const h = (b[0] as number) | ((b[1] as number) << 8) | ((b[2] as number) << 16);
        const last = (h & 1) === 1;
        const type = (h >> 1) & 3;
        const size = h >>> 3;
        if (type === 3) throw new Error("a block has the reserved type");
        this.atChecksum = false;
        this.skipThen(type === 1 ? 1 : size, !last);
        return;
      }
    }
  }

  private afterSkip(): void {
    if (this.moreBlocks) {
      this.expect(S_BLOCK, 3);
      return;
    }
    if (this.checksum && !this.atChecksum) {
      this.atChecksum = true;
      this.skipThen(4, false);
      return;
    }
    this.boundary = true;
    this.expect(S_MAGIC, 4);
  }
}
