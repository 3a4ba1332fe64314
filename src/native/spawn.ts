/**
 * Starting container processes through the helper, and the parent's side of the
 * sync protocol (see csrc/helper.c): C's pid on the status pipe, then READY / GO /
 * PTY / ERROR messages on the socketpair, end-of-file once execve succeeded.
 */
import { call, F } from "./helper.ts";
import { strerror } from "./libc.ts";
import { type Encoded, encodePrograms, MSG, type Op } from "./program.ts";
import { shimFd } from "./shim.ts";
import { addr, cpath, cstr, sys } from "./syscall.ts";

export interface Spawned {
  /** W, the first child (exits at once in the foreground, becomes the monitor when detached) */
  wpid: number;
  statusFd: number;
  syncFd: number;
}

export function spawnProcess(w: readonly Op[], c: readonly Op[]): Spawned {
  return spawnEncoded(encodePrograms(w, c));
}

/** Starts W with programs encoded beforehand (see encodePrograms), e.g. while nsbox waited for something else. */
export function spawnEncoded(p: Encoded): Spawned {
  const out = new Int32Array(3);
  const r = call(F.SPAWN, p.buf, p.wlen, p.buf.subarray(p.wlen), p.clen, out, shimFd());
  if (r < 0) throw Object.assign(new Error(`cannot start the container process: ${strerror(-r).toLowerCase()}`), { errno: -r });
  return { wpid: out[0] as number, statusFd: out[1] as number, syncFd: out[2] as number };
}

/** C's pid as W reported it, or -errno when W could not create it. 0: W died first. */
export function readChildPid(s: Spawned): number {
  const b = new Int32Array(1);
  const n = call(F.READ_FULL, s.statusFd, b, 4);
  return n === 4 ? (b[0] as number) : 0;
}

export type ChildMessage =
  | { type: "ready" }
  | { type: "error"; op: number; errno: number }
  | { type: "pty"; fd: number }
  | { type: "created" }
  | { type: "exec" };

/** The next message from C; "exec" means end-of-file: C's execve succeeded (or C died). */
export function recvMessage(s: Spawned): ChildMessage {
  const buf = new Uint32Array(3);
  const fd = new Int32Array(1);
  const n = call(F.RECV, s.syncFd, buf, 12, fd);
  if (n <= 0) return { type: "exec" };
  const type = buf[0] as number;
  const op = buf[1] as number;
  const err = buf[2] as number;
  if (type === MSG.READY) return { type: "ready" };
  if (type === MSG.PTY) return { type: "pty", fd: fd[0] as number };
  if (type === MSG.CREATED) return { type: "created" };
  return { type: "error", op, errno: err };
}

/** GO: C may go on; fd (if any) travels with it, for C_ATTACH. */
export function sendGo(s: Spawned, fd = -1): void {
  call(F.SEND, s.syncFd, new Uint32Array([MSG.GO, 0, 0]), 12, fd);
}

/** How idmappedTree copies and maps (IDMAP_* in csrc/host_calls.c). */
export interface IdmapHow {
  /** copy the mounts below path too (rbind) */
  tree: boolean;
  /** idmap those too ("ridmap") */
  idmap: boolean;
  /** MOUNT_ATTR_RDONLY, _NOSUID, _NODEV, _NOEXEC to set, and whether below too */
  attrs: number;
  attrsBelow: boolean;
}
const WHOLE: IdmapHow = { tree: true, idmap: true, attrs: 0, attrsBelow: true };

/** A detached, idmapped copy of the tree at path (see nsb_idmap_tree in csrc/host_calls.c); fd or -errno. */
export function idmappedTree(path: string, usernsFd: number, how: IdmapHow = WHOLE): number {
  const bits = (how.tree ? 1 : 0) | (how.idmap ? 2 : 0) | (how.attrsBelow ? 4 : 0);
  return call(F.IDMAP_TREE, Buffer.from(`${path}\0`), usernsFd, bits, how.attrs);
}

/** A process alone in a new user namespace, waiting for SIGKILL (see nsb_userns_holder); pid or -errno. */
export function userNamespaceHolder(): number {
  return call(F.USERNS_HOLDER);
}

/** wait4(pid): { pid, status } with pid 0 when WNOHANG found it still running, -errno on error. */
export function waitPid(pid: number, nohang = false): { pid: number; status: number } {
  const st = new Int32Array(1);
  const r = call(F.WAIT, pid, st, nohang ? 1 : 0);
  return { pid: r, status: st[0] as number };
}

/**
 * The child's wait status if it exits within ms, waited for here, on the calling
 * thread (a pidfd and ppoll; a signal handler's interruption resumes the wait):
 * a foreground run's short command is awaited without Bun's event loop and its
 * timers (~0.5 MiB of Bun's code a run otherwise pages in). Undefined when it
 * still runs then, or when it is not this process's child.
 */
export function waitExitSync(pid: number, ms: number): number | undefined {
  const fd = pidfdOpen(pid);
  if (fd >= 0) {
    try {
      // struct pollfd { int fd; short events (POLLIN); short revents } and a
      // struct timespec, little-endian on both architectures nsbox ships
      const pfd = new Int32Array([fd, 1]);
      const ts = new Int32Array(4);
      const end = Date.now() + ms;
      for (;;) {
        const left = end - Date.now();
        if (left <= 0) break;
        ts[0] = Math.floor(left / 1000);
        ts[2] = (left % 1000) * 1000000;
        const r = sys("ppoll", addr(pfd), 1, addr(ts), 0, 8);
        if (r !== -4 /* EINTR */) break;
      }
    } finally {
      closeFd(fd);
    }
  }
  const r = waitPid(pid, true);
  return r.pid === pid ? r.status : undefined;
}

/** Exit code in the shell's convention: the code, or 128+N for death by signal N. */
export function exitCodeOf(status: number): number {
  const sig = status & 0x7f;
  return sig === 0 ? (status >> 8) & 0xff : 128 + sig;
}

export function closeFd(fd: number): void {
  if (fd >= 0) sys("close", fd);
}

/** Orphans of our children come to us (so C, once W exits, is ours to wait for). */
export function becomeSubreaper(): void {
  sys("prctl", 36 /* PR_SET_CHILD_SUBREAPER */, 1);
}

export function makePipe(cloexec = true): [number, number] {
  const fds = new Int32Array(2);
  const r = sys("pipe2", addr(fds), cloexec ? 0o2000000 : 0);
  if (r < 0) throw new Error(`pipe: errno ${-r}`);
  return [fds[0] as number, fds[1] as number];
}

export function getWinsize(fd: number): { rows: number; cols: number } | undefined {
  const ws = new Uint16Array(2);
  if (call(F.WINSIZE, fd, 0, ws) < 0) return undefined;
  return { rows: ws[0] as number, cols: ws[1] as number };
}

export function setWinsize(fd: number, rows: number, cols: number): void {
  call(F.WINSIZE, fd, 1, new Uint16Array([rows, cols]));
}

/** A pidfd for pid (pins that process: a later pid reuse cannot fool a signal). */
export function pidfdOpen(pid: number): number {
  return sys("pidfd_open", pid, 0);
}

export function pidfdSignal(pidfd: number, sig: number): number {
  return sys("pidfd_send_signal", pidfd, sig, 0, 0);
}

/** mount(2) in nsbox's own (host) mount namespace: only for `ns --bind`. */
export function hostMount(src: string | null, target: string, fstype: string | null, flags: number): number {
  const s = src === null ? undefined : cstr(src);
  const f = fstype === null ? undefined : cstr(fstype);
  const at = cpath(target);
  return at < 0 ? at : sys("mount", s ? addr(s) : 0, at, f ? addr(f) : 0, flags, 0);
}

export function hostUmount(target: string, flags: number): number {
  const at = cpath(target);
  return at < 0 ? at : sys("umount2", at, flags);
}

/** Puts terminal fd into raw mode; returns its previous settings (to restore), or undefined if fd is no terminal. */
export function termiosRaw(fd: number): Uint8Array | undefined {
  const saved = new Uint8Array(64);
  return call(F.TERMIOS, fd, 2, saved) < 0 ? undefined : saved;
}

export function termiosSet(fd: number, saved: Uint8Array): void {
  call(F.TERMIOS, fd, 1, saved);
}
