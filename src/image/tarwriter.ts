/**
 * A small ustar writer for image archives (`image save`): directories and regular
 * files with short names, written straight to a file descriptor. Image archives
 * hold nothing else (manifests, configs and layer blobs), so no PAX or GNU
 * extensions are needed; names longer than 100 bytes are refused.
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";

const BLOCK = 512;

export class TarWriter {
  private readonly fd: number;
  private readonly mtime = Math.floor(Date.now() / 1000);

  constructor(fd: number) {
    this.fd = fd;
  }

  dir(name: string): void {
    this.header(name.endsWith("/") ? name : `${name}/`, 0, "5", 0o755);
  }

  bytes(name: string, data: Uint8Array | string): void {
    const b = typeof data === "string" ? Buffer.from(data) : data;
    this.header(name, b.length, "0", 0o644);
    this.write(b);
    this.pad(b.length);
  }

  /** Copies a file in; `size` must be its size (checked). */
  file(name: string, path: string, size: number): void {
    this.header(name, size, "0", 0o644);
    const fd = openSync(path, "r");
    const buf = Buffer.alloc(1 << 20);
    let total = 0;
    try {
      for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) {
        if (total + n > size) throw new Error(`${path} grew while it was being saved`);
        this.write(buf.subarray(0, n));
        total += n;
      }
    } finally {
      closeSync(fd);
    }
    if (total !== size) throw new Error(`${path} shrank while it was being saved`);
    this.pad(size);
  }

  /** Two zero blocks end the archive. */
  end(): void {
    this.write(Buffer.alloc(BLOCK * 2));
  }

  private header(name: string, size: number, type: string, mode: number): void {
    const nameBytes = Buffer.from(name);
    if (nameBytes.length > 100) throw new Error(`archive member name too long: ${name}`);
    const h = Buffer.alloc(BLOCK);
    nameBytes.copy(h, 0);
    const octal = (v: number, off: number, len: number) => h.write(`${v.toString(8).padStart(len - 1, "0")}\0`, off, len, "latin1");
    octal(mode, 100, 8);
    octal(0, 108, 8);
    octal(0, 116, 8);
    octal(size, 124, 12);
    octal(this.mtime, 136, 12);
    h.write("        ", 148, 8, "latin1");
    h.write(type, 156, 1, "latin1");
    h.write("ustar\x0000", 257, 8, "latin1");
    let sum = 0;
    for (const byte of h) sum += byte;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
    this.write(h);
  }

  private pad(size: number): void {
    const rest = size % BLOCK;
    if (rest) this.write(Buffer.alloc(BLOCK - rest));
  }

  private write(b: Uint8Array): void {
    let off = 0;
    while (off < b.length) off += writeSync(this.fd, b, off, b.length - off);
  }
}
