/**
 * The image store: content-addressed, shared by every image and container, safe
 * for concurrent nsbox commands and for an nsbox killed at any moment.
 *
 *   ROOT/images/blobs/sha256/<hex>   manifests, configs and layer blobs, by digest
 *   ROOT/images/layers/<hex>/        a layer blob unpacked (keyed by the blob's digest),
 *                                    OCI whiteouts turned into overlayfs ones
 *   ROOT/images/l/<16 hex>           short links to layers/<hex>: an overlay mount's
 *                                    options must fit in a page (podman's l/ directory)
 *   ROOT/images/sizes/<hex>          a layer's unpacked size, noted once (for image ls)
 *   ROOT/images/images/<hex>.json    an image record, named by its id (the config digest)
 *   ROOT/images/repositories.json    the tags index: name:tag -> image id
 *   ROOT/images/locks/<hex>          flock files: one writer per blob or layer
 *   ROOT/images/tmp/                 blobs and layers being written (renamed when complete)
 *
 * Nothing appears under its final name until it is complete and verified: a blob
 * is written to tmp/, its digest and size checked, then renamed; a layer is
 * unpacked into tmp/ and renamed. A crash leaves only tmp/ entries, which the next
 * writer of the store clears once their writer is gone.
 *
 * The layout is made by the first write (layout()), not by opening the store: a
 * command that only reads, or fails on bad input, leaves the data root as it was.
 */

import { fail, NsboxError } from "../errors.ts";
import { flock, LOCK_EX, LOCK_NB, LOCK_UN } from "../native/flock.ts";
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { isRootless } from "../rootless/identity.ts";
import { extractAsUser, removeTree, renameTree } from "../rootless/storage.ts";
import { roots } from "../state/paths.ts";
import { randomHex } from "../state/random.ts";
import { digestHex, isDigest, sha256Bytes } from "./digest.ts";
import { normalizeName } from "./names.ts";

/** A layer (or config) as a manifest lists it. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** What the store knows of an image; the manifest and config themselves are blobs. */
export interface ImageRecord {
  /** the config digest, as docker and podman name images */
  id: string;
  configDigest: string;
  /** the manifest as stored here (what `image save` and `inspect` use) */
  manifestDigest: string;
  manifestMediaType: string;
  layers: Descriptor[];
  /** the config's rootfs.diff_ids: the uncompressed layers' digests */
  diffIds: string[];
  /** name@digest for each registry manifest this image came from */
  repoDigests: string[];
  /** ISO time it entered the store */
  stored: string;
  os: string;
  architecture: string;
}

/** The parts of an image config (OCI image-spec config.json) that a container uses. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  created?: string;
  config?: {
    User?: string;
    Env?: string[] | null;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
    ExposedPorts?: Record<string, unknown> | null;
    Volumes?: Record<string, unknown> | null;
  };
  rootfs?: { type: string; diff_ids: string[] };
  history?: unknown[];
}

export interface NewImage {
  /** the name it was pulled or imported as ("" or undefined: untagged) */
  reference?: string;
  /** the digest of the manifest as the registry served it */
  manifestDigest: string;
  /** the manifest's bytes as received (stored as a blob under manifestDigest), or the parsed object */
  manifest: Uint8Array | string | object;
  configDigest: string;
  /** the config's bytes; absent when the config blob is already in the store */
  config?: Uint8Array | string;
  /** the manifest's layers (default: read from the manifest) */
  layers?: Descriptor[];
}

export type WriteChunk = (chunk: Uint8Array) => void;

const MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const LOCK_POLL_MS = 50;

export class ImageStore {
  readonly dir: string;
  /** per-process waiters, as flock does not exclude two fds of one process from each other's view of time */
  private inFlight = new Map<string, Promise<unknown>>();

  private laidOut = false;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Makes the store's directories: called by every write, never by a read. */
  layout(): void {
    if (this.laidOut) return;
    for (const d of ["blobs/sha256", "layers", "sizes", "l", "images", "locks", "tmp"]) mkdirSync(join(this.dir, d), { recursive: true, mode: 0o700 });
    this.laidOut = true;
  }

  /** A path in tmp/ for work in progress (the layout is made first). */
  tmpPath(name: string): string {
    this.layout();
    return join(this.dir, "tmp", `${name}-${process.pid}-${randomHex(4)}`);
  }

  /** The entries of one of the store's directories; none while the store has never been written. */
  private list(sub: string): string[] {
    try {
      return readdirSync(join(this.dir, sub));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
  }

  // --- blobs -------------------------------------------------------------

  blobPath(digest: string): string {
    return join(this.dir, "blobs/sha256", digestHex(digest, "blob digest"));
  }

  hasBlob(digest: string): boolean {
    return isDigest(digest) && existsSync(this.blobPath(digest));
  }

  readBlob(digest: string): Buffer {
    try {
      return readFileSync(this.blobPath(digest));
    } catch {
      fail(`blob ${digest} is missing from the image store ${this.dir}: pull or import the image again`);
    }
  }

  /**
   * Writes a blob: `produce` calls writeChunk with its bytes in order; when it
   * returns, the digest and size are checked and the blob is renamed into place.
   * One writer per digest (other processes wait on a lock); a blob already present
   * is not written again (returns false, produce is not called). On any failure
   * the temporary file is removed and the error goes to the caller.
   */
  async writeBlob(digest: string, size: number | undefined, produce: (writeChunk: WriteChunk) => Promise<void>): Promise<boolean> {
    const hex = digestHex(digest, "blob digest");
    const final = this.blobPath(digest);
    if (existsSync(final)) return false;
    return this.withLock(hex, async () => {
      if (existsSync(final)) return false;
      const tmp = this.tmpPath(`blob-${hex}`);
      const fd = openSync(tmp, "wx", 0o644);
      let closed = false;
      try {
        const h = new Bun.CryptoHasher("sha256");
        let written = 0;
        await produce((chunk) => {
          if (size !== undefined && size >= 0 && written + chunk.length > size)
            throw new NsboxError(`blob ${digest} is longer than its declared size ${size}: the source is corrupt`);
          let off = 0;
          while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
          h.update(chunk);
          written += chunk.length;
        });
        if (size !== undefined && size >= 0 && written !== size) throw new NsboxError(`blob ${digest} is truncated: ${written} of ${size} bytes arrived`);
        const got = `sha256:${h.digest("hex")}`;
        if (got !== digest) throw new NsboxError(`blob ${digest} does not match its digest (its content hashes to ${got}): the source is corrupt`);
        fsyncSync(fd);
        closeSync(fd);
        closed = true;
        renameSync(tmp, final);
        return true;
      } catch (e) {
        if (!closed) closeSync(fd);
        rmSync(tmp, { force: true });
        if ((e as NodeJS.ErrnoException).code === "ENOSPC")
          fail(`no space left on the device of ${this.dir} while writing blob ${digest}: the partial blob was removed; free space and try again`);
        throw e;
      }
    });
  }

  /** Stores bytes as a blob (the digest is computed, or checked when given). */
  async putBlob(data: Uint8Array | string, digest?: string): Promise<string> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const d = digest ?? sha256Bytes(bytes);
    await this.writeBlob(d, bytes.length, async (w) => w(bytes));
    return d;
  }

  // --- images ------------------------------------------------------------

  /** Records an image whose layer blobs are in the store; returns its record. */
  async recordImage(img: NewImage): Promise<ImageRecord> {
    const manifestBytes = img.manifest instanceof Uint8Array || typeof img.manifest === "string" ? img.manifest : JSON.stringify(img.manifest);
    const manifest = parseJson(manifestBytes, `the manifest ${img.manifestDigest}`) as {
      mediaType?: string;
      layers?: Descriptor[];
      config?: Descriptor;
    };
    // a manifest given as bytes is kept byte for byte (its digest is what registries know it by)
    const manifestDigest = await this.putBlob(manifestBytes, sha256Bytes(manifestBytes) === img.manifestDigest ? img.manifestDigest : undefined);
    if (img.config !== undefined) await this.putBlob(img.config, img.configDigest);
    const config = this.imageConfigOf(img.configDigest);
    const layers = img.layers ?? manifest.layers ?? [];
    for (const l of layers) if (!this.hasBlob(l.digest)) fail(`cannot record the image: its layer ${l.digest} is not in the store`);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== layers.length)
      fail(`the image config ${img.configDigest} lists ${diffIds.length} layers (rootfs.diff_ids) but its manifest has ${layers.length}`);
    const id = img.configDigest;
    const name = img.reference ? normalizeName(img.reference) : undefined;
    const repoName = name?.replace(/[:@][^/]*$/, "");
    const old = this.image(id);
    const repoDigests = new Set(old?.repoDigests ?? []);
    if (repoName && isDigest(img.manifestDigest)) repoDigests.add(`${repoName}@${img.manifestDigest}`);
    const rec: ImageRecord = {
      id,
      configDigest: img.configDigest,
      manifestDigest,
      manifestMediaType: manifest.mediaType ?? MEDIA_OCI_MANIFEST,
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      diffIds,
      repoDigests: [...repoDigests],
      stored: old?.stored ?? new Date().toISOString(),
      os: config.os ?? "linux",
      architecture: config.architecture ?? "",
    };
    this.layout();
    writeAtomic(this.recordPath(id), JSON.stringify(rec, null, 2));
    if (name && !name.includes("@")) await this.tag(id, name);
    return rec;
  }

  imageConfigOf(configDigest: string): ImageConfig {
    const cfg = parseJson(this.readBlob(configDigest), `the image config ${configDigest}`);
    if (typeof cfg !== "object" || cfg === null || Array.isArray(cfg)) fail(`the image config ${configDigest} is not a JSON object`);
    return cfg as ImageConfig;
  }

  private recordPath(id: string): string {
    return join(this.dir, "images", `${digestHex(id, "image id")}.json`);
  }

  image(id: string): ImageRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.recordPath(id), "utf8")) as ImageRecord;
    } catch {
      return undefined;
    }
  }

  images(): ImageRecord[] {
    const out: ImageRecord[] = [];
    for (const f of this.list("images")) {
      if (!/^[a-f0-9]{64}\.json$/.test(f)) continue;
      const r = this.image(`sha256:${f.slice(0, 64)}`);
      if (r) out.push(r);
    }
    return out.sort((a, b) => b.stored.localeCompare(a.stored));
  }

  // --- names -------------------------------------------------------------

  /** name:tag -> image id */
  tags(): Record<string, string> {
    try {
      return (JSON.parse(readFileSync(join(this.dir, "repositories.json"), "utf8")) as { tags: Record<string, string> }).tags ?? {};
    } catch {
      return {};
    }
  }

  namesOf(id: string): string[] {
    return Object.entries(this.tags())
      .filter(([, v]) => v === id)
      .map(([k]) => k)
      .sort();
  }

  private async editTags(fn: (tags: Record<string, string>) => void): Promise<void> {
    await this.withLock("repositories", async () => {
      const tags = this.tags();
      fn(tags);
      writeAtomic(join(this.dir, "repositories.json"), JSON.stringify({ tags }, null, 2));
    });
  }

  async tag(id: string, name: string): Promise<void> {
    const full = normalizeName(name);
    if (full.includes("@")) fail(`cannot tag with "${name}": a tag is NAME[:TAG], not a digest`);
    await this.editTags((t) => {
      t[full] = id;
    });
  }

  async untag(name: string): Promise<void> {
    await this.editTags((t) => {
      delete t[name];
    });
  }

  /**
   * An image by what users type: a name (completed as docker does), a full or
   * short id (a unique prefix of at least 3 hex digits, with or without sha256:),
   * or NAME@sha256:... / a manifest digest.
   */
  find(ref: string): ImageRecord | undefined {
    const hex = /^(sha256:)?([a-f0-9]{3,64})$/.exec(ref);
    if (hex) {
      const prefix = hex[2] as string;
      const ids = this.list("images").filter((f) => f.endsWith(".json") && f.startsWith(prefix));
      if (ids.length > 1) fail(`image id prefix "${ref}" is ambiguous (${ids.length} images): give more digits`);
      if (ids.length === 1) return this.image(`sha256:${(ids[0] as string).slice(0, 64)}`);
      if (hex[1]) return this.images().find((r) => r.manifestDigest === ref || r.repoDigests.some((d) => d.endsWith(`@${ref}`)));
    }
    let full: string;
    try {
      full = normalizeName(ref);
    } catch {
      return undefined;
    }
    if (full.includes("@")) {
      const digest = full.slice(full.indexOf("@") + 1);
      return this.images().find((r) => r.repoDigests.includes(full) || r.manifestDigest === digest);
    }
    const id = this.tags()[full];
    return id ? this.image(id) : undefined;
  }

  mustFind(ref: string): ImageRecord {
    const r = this.find(ref);
    if (!r) fail(`no image "${ref}" in the store (see: nsbox image ls; get it with nsbox pull or nsbox image import)`);
    return r;
  }

  /**
   * Removes a name, or the whole image: a name goes alone while the image has
   * others; an id (or the last name) removes the record. The blobs and layers stay
   * until `prune`. `inUse` says which containers use the image (checked unless force).
   */
  async remove(ref: string, opts: { force: boolean; inUse: (id: string) => string[] }): Promise<{ untagged: string[]; deleted?: string }> {
    const rec = this.mustFind(ref);
    const names = this.namesOf(rec.id);
    let byName: string | undefined;
    try {
      byName = normalizeName(ref);
    } catch {
      byName = undefined;
    }
    if (byName && names.includes(byName) && names.length > 1) {
      await this.untag(byName);
      return { untagged: [byName] };
    }
    const users = opts.inUse(rec.id);
    if (users.length && !opts.force)
      fail(`image ${ref} is used by container${users.length > 1 ? "s" : ""} ${users.join(", ")}: remove ${users.length > 1 ? "them" : "it"} first, or use -f`);
    await this.editTags((t) => {
      for (const n of names) delete t[n];
    });
    rmSync(this.recordPath(rec.id), { force: true });
    return { untagged: names, deleted: rec.id };
  }

  // --- layers ------------------------------------------------------------

  layerDir(digest: string): string {
    return join(this.dir, "layers", digestHex(digest, "layer digest"));
  }

  /** The short link to a layer, relative to linkDir() (see plan.ts: the overlay mount chdirs there). */
  shortLink(digest: string): string {
    return digestHex(digest, "layer digest").slice(0, 16);
  }

  linkDir(): string {
    return join(this.dir, "l");
  }

  /**
   * The image's layers unpacked, bottom first. Each layer blob is unpacked once,
   * into tmp/ then renamed: a crash never leaves a half layer under layers/.
   */
  async unpackLayers(image: ImageRecord, onLayer?: (i: number, total: number, digest: string) => void): Promise<string[]> {
    this.layout();
    const dirs: string[] = [];
    for (const [i, l] of image.layers.entries()) {
      const dir = this.layerDir(l.digest);
      if (!existsSync(dir)) {
        onLayer?.(i, image.layers.length, l.digest);
        await this.unpackLayer(l.digest, dir);
      }
      this.ensureShortLink(l.digest);
      dirs.push(dir);
    }
    return dirs;
  }

  private async unpackLayer(digest: string, dir: string): Promise<void> {
    const hex = digestHex(digest, "layer digest");
    const blob = this.blobPath(digest);
    if (!existsSync(blob)) fail(`layer ${digest} is missing from the image store: pull or import the image again`);
    await this.withLock(`layer-${hex}`, async () => {
      if (existsSync(dir)) return;
      const tmp = this.tmpPath(`layer-${hex}`);
      mkdirSync(tmp, { mode: 0o755 });
      // loaded only when a layer is unpacked (its decompressors cost start-up time)
      const { extractTar, TarError } = await import("../rootfs/tar.ts");
      try {
        // the blob's media type is not trusted for the compression: the extractor sniffs it
        // rootless: owners through the user's mapping (see rootless/storage.ts)
        if (isRootless()) await extractAsUser(blob, tmp, true);
        else await extractTar(blob, tmp, { whiteouts: "overlay", sameOwner: true });
        writeAtomic(join(this.dir, "sizes", hex), String(layerSize(tmp)));
        renameTree(tmp, dir);
      } catch (e) {
        removeTree(tmp);
        if (e instanceof TarError) fail(`cannot unpack layer ${digest}: ${e.message}`);
        if ((e as NodeJS.ErrnoException).code === "ENOSPC")
          fail(`no space left on the device of ${this.dir} while unpacking layer ${digest}: free space and try again`);
        throw e;
      }
    });
  }

  private ensureShortLink(digest: string): void {
    const link = join(this.linkDir(), this.shortLink(digest));
    try {
      lstatSync(link);
    } catch {
      try {
        symlinkSync(join("..", "layers", digestHex(digest)), link);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
  }

  // --- clean-up and sizes ------------------------------------------------

  /**
   * Removes untagged images no container uses, then every layer and blob that no
   * remaining image (nor a container, through `keepLayers`) refers to.
   */
  async prune(opts: { inUse: (id: string) => string[]; keepLayers: Set<string> }): Promise<{ images: string[]; layers: number; blobs: number; bytes: number }> {
    // a store never written has nothing to prune (and is not made by pruning it)
    if (!existsSync(join(this.dir, "locks"))) return { images: [], layers: 0, blobs: 0, bytes: 0 };
    return this.withLock("prune", async () => {
      const tagged = new Set(Object.values(this.tags()));
      const removed: string[] = [];
      for (const r of this.images())
        if (!tagged.has(r.id) && opts.inUse(r.id).length === 0) {
          rmSync(this.recordPath(r.id), { force: true });
          removed.push(r.id);
        }
      const keepBlobs = new Set<string>();
      // by the first 16 hex digits: containers name their layers by short link (see shortLink)
      const keepLayers = new Set<string>([...opts.keepLayers].map((d) => d.replace(/^sha256:/, "").slice(0, 16)));
      for (const r of this.images()) {
        for (const d of [r.configDigest, r.manifestDigest, ...r.layers.map((l) => l.digest)]) keepBlobs.add(d.replace(/^sha256:/, ""));
        for (const l of r.layers) keepLayers.add(l.digest.replace(/^sha256:/, "").slice(0, 16));
      }
      let layers = 0;
      let blobs = 0;
      let bytes = 0;
      for (const hex of this.list("layers")) {
        if (keepLayers.has(hex.slice(0, 16))) continue;
        const dir = join(this.dir, "layers", hex);
        bytes += diskUsage(dir);
        rmSync(join(this.linkDir(), hex.slice(0, 16)), { force: true });
        removeTree(dir);
        rmSync(join(this.dir, "locks", `layer-${hex}`), { force: true });
        rmSync(join(this.dir, "sizes", hex), { force: true });
        layers++;
      }
      for (const hex of this.list("blobs/sha256")) {
        if (keepBlobs.has(hex)) continue;
        const p = join(this.dir, "blobs/sha256", hex);
        bytes += diskUsage(p);
        unlinkSync(p);
        rmSync(join(this.dir, "locks", hex), { force: true });
        blobs++;
      }
      this.clearTemps();
      return { images: removed, layers, blobs, bytes };
    });
  }

  /** Removes temporary blobs and layers whose writer is gone. */
  clearTemps(): void {
    for (const f of this.list("tmp")) {
      const pid = Number(/-(\d+)-[a-f0-9]+$/.exec(f)?.[1]);
      if (pid && pid !== process.pid && alive(pid)) continue;
      if (pid === process.pid) continue;
      removeTree(join(this.dir, "tmp", f));
    }
  }

  /** Bytes used on disk by blobs, unpacked layers, and one image's layers (each inode counted once). */
  usage(): { blobs: number; layers: number; total: number } {
    const seen = new Set<string>();
    const blobs = diskUsage(join(this.dir, "blobs"), seen);
    const layers = diskUsage(join(this.dir, "layers"), seen);
    return { blobs, layers, total: blobs + layers };
  }

  /** Size of an image's files: each layer's unpacked size, or its blob's size until it is unpacked. */
  unpackedSize(image: ImageRecord): number {
    let n = 0;
    for (const l of image.layers) {
      try {
        n += Number(readFileSync(join(this.dir, "sizes", digestHex(l.digest)), "utf8")) || 0;
      } catch {
        n += l.size;
      }
    }
    return n;
  }

  // --- locks -------------------------------------------------------------

  /** Runs fn holding the named lock (flock on locks/<name>), polled so the event loop keeps running. */
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.inFlight.get(name);
    if (prev) await prev.catch(() => undefined);
    this.layout();
    const run = (async () => {
      const fd = openSync(join(this.dir, "locks", name), "a", 0o600);
      try {
        while (!flock(fd, LOCK_EX | LOCK_NB)) await Bun.sleep(LOCK_POLL_MS);
        return await fn();
      } finally {
        flock(fd, LOCK_UN);
        closeSync(fd);
      }
    })();
    this.inFlight.set(name, run);
    try {
      return await run;
    } finally {
      if (this.inFlight.get(name) === run) this.inFlight.delete(name);
    }
  }
}

/** The store under the data root (ROOT/images); its directories are made by its first write. */
export function openStore(): ImageStore {
  return new ImageStore(join(roots().data, "images"));
}

function writeAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}-${randomHex(4)}`;
  writeFileSync(tmp, data, { mode: 0o644 });
  renameSync(tmp, path);
}

function parseJson(data: Uint8Array | string, what: string): unknown {
  try {
    return JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
  } catch (e) {
    fail(`${what} is not valid JSON (${(e as Error).message}): the image is corrupt`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** du: blocks used by a tree, each inode once (hard links inside layers are common). */
export function diskUsage(path: string, seen = new Set<string>()): number {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    return 0;
  }
  const key = `${st.dev}:${st.ino}`;
  if (seen.has(key)) return 0;
  seen.add(key);
  let n = st.blocks * 512;
  if (st.isDirectory()) for (const e of readable(path)) n += diskUsage(join(path, e), seen);
  return n;
}

/**
 * A directory's entries; none when it is closed to us: rootless, a layer's
 * directories of subordinate ids may be (mode 0700 of its uid 999, say), and
 * sizes then leave them out rather than fail.
 */
function readable(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EACCES") return [];
    throw e;
  }
}

/** Apparent size of the files of a layer (what `image ls` shows, as docker's SIZE). */
function layerSize(dir: string): number {
  let n = 0;
  const walk = (p: string) => {
    if (readable(p).length === 0) return;
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const q = join(p, e.name);
      if (e.isDirectory()) walk(q);
      else if (e.isFile()) n += statSync(q).size;
    }
  };
  walk(dir);
  return n;
}
