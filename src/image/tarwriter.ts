/**
 * A small tar writer, straight to a file descriptor: ustar headers, with a PAX
 * extended header in front of an entry whose name or link target does not fit
 * ustar's 100 bytes (or whose size does not fit 11 octal digits). Enough for
 * image archives (`image save`: manifests, configs, blobs) and for a container's
 * files (`export`: directories, files, hard and symbolic links, devices, FIFOs).
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";

const BLOCK = 512;

export interface Entry {
  name: string;
  /** "0" file, "1" hard link, "2" symlink, "3" char device, "4" block device, "5" directory, "6" FIFO */
  type: "0" | "1" | "2" | "3" | "4" | "5" | "6";
  mode: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** seconds */
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

export class TarWriter {
  private readonly fd: number;
  private readonly now = Math.floor(Date.now() / 1000);

  constructor(fd: number) {
    this.fd = fd;
  }

  dir(name: string): void {
    this.header({ name: name.endsWith("/") ? name : `${name}/`, type: "5", mode: 0o755 });
  }

  bytes(name: string, data: Uint8Array | string): void {
    const b = typeof data === "string" ? Buffer.from(data) : data;
    this.header({ name, type: "0", mode: 0o644, size: b.length });
    this.write(b);
    this.pad(b.length);
  }

  /** Copies a file in as an archive member of mode 0644. */
  file(name: string, path: string, size: number): void {
    this.entry({ name, type: "0", mode: 0o644, size }, path);
  }

  /** Any entry; a regular file's bytes come from `path` (an open fd's path) and must be `size` long. */
  entry(e: Entry, path?: string): void {
    this.header(e);
    if (e.type !== "0" || !e.size) return;
    const fd = openSync(path as string, "r");
    try {
      this.copy(fd, e.size, path as string);
    } finally {
      closeSync(fd);
    }
  }

  /** Two zero blocks end the archive. */
  end(): void {
    this.write(Buffer.alloc(BLOCK * 2));
  }

  private copy(fd: number, size: number, what: string): void {
    const buf = Buffer.alloc(1 << 20);
    let total = 0;
    while (total < size) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, size - total), null);
      if (n <= 0) break;
      this.write(buf.subarray(0, n));
      total += n;
    }
    // a file that shrank meanwhile is padded with zeros: the header already promised its size
    if (total < size) {
      process.emitWarning(`${what} shrank while it was being archived`);
      this.write(Buffer.alloc(size - total));
    }
    this.pad(size);
  }

  private header(e: Entry): void {
    const name = Buffer.from(e.name);
    const link = Buffer.from(e.linkname ?? "");
    const size = e.size ?? 0;
    const pax: [string, string][] = [];
    if (name.length > 100) pax.push(["path", e.name]);
    if (link.length > 100) pax.push(["linkpath", e.linkname as string]);
    if (size >= 8 ** 11) pax.push(["size", String(size)]);
    if (pax.length) {
      const body = Buffer.from(pax.map(([k, v]) => paxRecord(k, v)).join(""));
      this.raw({ name: "././@PaxHeader", type: "x" as Entry["type"], mode: 0o644, size: body.length }, Buffer.alloc(0), Buffer.alloc(0));
      this.write(body);
      this.pad(body.length);
    }
    this.raw(e, name.subarray(0, 100), link.subarray(0, 100));
  }

  private raw(e: Entry, name: Buffer, link: Buffer): void {
    const h = Buffer.alloc(BLOCK);
    name.copy(h, 0);
    const octal = (v: number, off: number, len: number) =>
      h.write(
        `${Math.min(v, 8 ** (len - 1) - 1)
          .toString(8)
          .padStart(len - 1, "0")}\0`,
        off,
        len,
        "latin1",
      );
    octal(e.mode & 0o7777, 100, 8);
    octal(e.uid ?? 0, 108, 8);
    octal(e.gid ?? 0, 116, 8);
    octal(e.type === "0" || (e.type as string) === "x" ? (e.size ?? 0) : 0, 124, 12);
    octal(e.mtime ?? this.now, 136, 12);
    h.write("        ", 148, 8, "latin1");
    h.write(e.type, 156, 1, "latin1");
    link.copy(h, 157);
    h.write("ustar\x0000", 257, 8, "latin1");
    if (e.type === "3" || e.type === "4") {
      octal(e.devmajor ?? 0, 329, 8);
      octal(e.devminor ?? 0, 337, 8);
    }
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

/** "LEN key=value\n", LEN counting itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bytes = Buffer.byteLength(body);
  let len = bytes + String(bytes).length;
  if (String(len).length !== String(bytes).length) len = bytes + String(len).length;
  return `${len}${body}`;
}
