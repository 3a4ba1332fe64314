/**
 * The extractor: entries to files, directories, links and nodes on disk, with
 * their owners, modes and times. dest starts empty and only this code writes
 * into it, so it knows the type of every path there (see the safety notes in
 * index.ts).
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { makedev, mknod, S_IFBLK, S_IFCHR, S_IFIFO } from "../../native/mknod.ts";
import { fsetxattr } from "../../native/xattr.ts";
import { inChildUserNamespace } from "../../rootless/identity.ts";
import { type Entry, T_BLK, T_CHR, T_DIR, T_FIFO, T_GNU_DUMPDIR, T_LINK, T_SYMLINK, type Xattr } from "./format.ts";
import { isAncestor, leavesDir, normalize, refuse, show, TarError } from "./policy.ts";
import type { Sparse } from "./sparse.ts";
import { classifyWhiteout, OPAQUE_XATTR } from "./whiteout.ts";
import { setXattrs } from "./xattrs.ts";

const OPAQUE_VALUE = Buffer.from("y");
const USER_OPAQUE_XATTR = "user.overlay.opaque";

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
  xattrs?: Xattr[];
}

const O_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const O_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const NON_ASCII = /[\u0080-\uffff]/;

/** Negative times must be given as a Date: Bun reads a negative number as "now". */
function time(seconds: number): number | Date {
  return seconds >= 0 ? seconds : new Date(seconds * 1000);
}

export class Extractor {
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
  /** in a sparse file: the map pair being written (its index) and the bytes of it done */
  private segment = 0;
  private segDone = 0;
  private destPrefix: Buffer | undefined;

  constructor(
    private readonly dest: string,
    private readonly sameOwner: boolean,
    /** OCI whiteouts become overlayfs ones (see whiteout.ts) */
    private readonly overlay = false,
  ) {
    this.kinds.set("", K_DIR);
  }

  /** Creates the entry; true when it is a regular file waiting for its data. */
  begin(e: Entry): boolean {
    this.leaveDirectories(e.path);
    if (this.overlay) {
      const w = classifyWhiteout(e.path, e.raw);
      if (w.kind === "whiteout") this.makeWhiteout(e, w.path);
      else if (w.kind === "opaque") this.makeOpaque(e, w.dir);
      if (w.kind !== "none") return false;
    }
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
      if (this.file?.sparse) this.writeSparse(this.file.sparse.map, chunk, off, n);
      else while (done < n) done += writeSync(this.fd, chunk, off + done, n - done);
    } catch (err) {
      throw this.failed(this.file, err);
    }
  }

  /**
   * A sparse file's data goes to its segments' offsets in turn; the file was
   * sized by ftruncate, so what is never written stays a hole. The reader has
   * checked that the segments hold exactly the data and lie inside the file.
   */
  private writeSparse(map: number[], chunk: Buffer, off: number, n: number): void {
    while (n > 0) {
      const segOff = map[this.segment] as number;
      const segLen = map[this.segment + 1] as number;
      if (this.segDone === segLen) {
        this.segment += 2;
        this.segDone = 0;
        continue;
      }
      const take = Math.min(n, segLen - this.segDone);
      const written = writeSync(this.fd, chunk, off, take, segOff + this.segDone);
      this.segDone += written;
      off += written;
      n -= written;
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
      setXattrs(e.xattrs, fd);
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
    if (e.sparse) {
      this.attempt(e, () => ftruncateSync(this.fd, (e.sparse as Sparse).realSize));
      this.segment = 0;
      this.segDone = 0;
    }
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
      setXattrs(e.xattrs, path);
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
      setXattrs(e.xattrs, path);
      chmodSync(path, e.mode);
    });
    this.kinds.set(e.path, K_FILE);
  }

  /** overlayfs's whiteout: a 0/0 character device where the deleted file was. */
  private makeWhiteout(e: Entry, path: string): void {
    const w: Entry = { ...e, path };
    this.prepare(w);
    const fsPath = this.fsPath(path);
    this.attempt(e, () => {
      // Unprivileged users may make this one device too (Linux >= 5.8).
      mknod(fsPath, S_IFCHR, makedev(0, 0));
      lutimesSync(fsPath, this.now, time(e.mtime));
      if (this.sameOwner) lchownSync(fsPath, e.uid, e.gid);
    });
    this.kinds.set(path, K_FILE);
  }

  /** overlayfs's opaque directory: the xattr on the marker's directory, made if missing. */
  private makeOpaque(e: Entry, dir: string): void {
    this.ensureParent(e.path, e);
    let fd = -1;
    try {
      fd = openSync(this.fsPath(dir), O_DIR);
      // rootless (a user, or root of a user namespace): trusted.* is refused, and the
      // overlay is mounted with userxattr, which reads user.overlay.* instead
      fsetxattr(fd, this.isRoot ? OPAQUE_XATTR : USER_OPAQUE_XATTR, OPAQUE_VALUE);
    } catch (err) {
      throw this.failed(e, err);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
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
    record.xattrs = e.xattrs;
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
      setXattrs(r.xattrs, fd);
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
