/**
 * A streaming, safe tar extractor for rootfs tarballs and OCI image layers
 * (plain, gzip or zstd).
 *
 * The tree it builds is meant to be the one GNU tar's
 * `tar -xp --xattrs --xattrs-include='*'` builds as root: same paths, contents,
 * modes (setuid/setgid/sticky included), numeric owners, hardlinks, symlink
 * targets (absolute ones stay absolute), device nodes, FIFOs, mtimes,
 * directories included, extended attributes (file capabilities above all) and
 * sparse files with their holes. For image layers, OCI whiteouts can become
 * overlayfs's (whiteout.ts).
 *
 * Files: source.ts (file, gzip, zstd; format sniffing; progress), reader.ts (the
 * push parser) over format.ts (headers, pax records) and sparse.ts (sparse
 * maps), writer.ts (entries to disk) with policy.ts (names), whiteout.ts and
 * xattrs.ts.
 *
 * How it works: a Source yields the decompressed archive in chunks (the file read
 * in 256 KiB blocks, gzip and zstd through node:zlib, whose streams inflate off
 * the JS thread). A TarReader parses it as a push state machine, so a header or
 * a file's data may be split across chunks anywhere, and hands file data
 * straight to the Extractor, which writes it with synchronous fs calls (far
 * fewer promise hops than async ones) without ever holding a whole file. Memory
 * depends on the number of entries (one small record per path) and the
 * directory depth, not on the size of the archive or of its files.
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
 * O_DIRECTORY|O_NOFOLLOW descriptors. Sparse data is written by offset into the
 * file just opened, at offsets its map was checked to keep inside the file. A
 * whiteout's name goes through the same checks as any entry's before its
 * device is made; the xattrs overlayfs reads (trusted.overlay.*, user.overlay.*)
 * are never taken from the archive, so a layer cannot forge whiteouts, opaque
 * directories or redirects.
 */
import { readdirSync } from "node:fs";
import { fullJit } from "../../jit.ts";
import { TarReader } from "./reader.ts";
import { openSource } from "./source.ts";
import { Extractor } from "./writer.ts";

export { TarError } from "./policy.ts";

function checkEmpty(dest: string): void {
  // Safety rests on knowing everything in dest: it must start empty.
  if (readdirSync(dest).length > 0) throw new Error(`cannot extract into ${JSON.stringify(dest)}: the directory is not empty`);
}

/** Options of extractTar. */
export interface ExtractOptions {
  /** Give files the numeric owners stored in the archive (default: when root). */
  sameOwner?: boolean;
  /**
   * "keep" (default) extracts `.wh.*` entries as the files they are. "overlay",
   * for OCI image layers: `DIR/.wh.NAME` becomes DIR/NAME, a 0/0 character
   * device (overlayfs's whiteout); `DIR/.wh..wh..opq` sets the xattr
   * trusted.overlay.opaque="y" on DIR (made if missing); other `.wh..wh.*`
   * entries (aufs metadata) are skipped; nothing named `.wh.*` is written.
   */
  whiteouts?: "keep" | "overlay";
  /** Compressed bytes read from the file so far; called at most every ~64 KiB, and at the end. */
  onProgress?: (bytesRead: number) => void;
  /** The compression; "auto" (default) reads the magic bytes, whatever the name says. */
  format?: "auto" | "tar" | "gzip" | "zstd";
}

/**
 * Extracts a tarball (plain, gzip or zstd, whatever its name says) into `dest`,
 * an existing empty directory (a freshly made temporary one for an image layer,
 * which the caller renames once this resolves). Throws TarError for an unsafe or
 * malformed archive; dest may then hold part of it, and the caller removes it.
 */
export async function extractTar(tarball: string, dest: string, opts: ExtractOptions = {}): Promise<void> {
  fullJit();
  checkEmpty(dest);
  const extractor = new Extractor(dest, opts.sameOwner ?? process.getuid?.() === 0, opts.whiteouts === "overlay");
  const reader = new TarReader(extractor);
  const source = openSource(tarball, opts.format ?? "auto", opts.onProgress);
  try {
    for await (const chunk of source.chunks) if (reader.push(chunk)) break;
    if (!reader.ended) {
      await source.done();
      reader.finish();
    }
    extractor.finish();
    source.completed();
  } finally {
    extractor.close();
    source.close();
  }
}
