/**
 * The few system calls the OCI verbs need that Node has no API for: mkfifo
 * (exec.fifo), prlimit (process.rlimits on the waiting process), and a Unix
 * socket connection to pass the pty master to --console-socket (SCM_RIGHTS,
 * sent by the helper's nsb_send), and an eventfd for `events`' OOM notices.
 * Raw system calls that return -errno (src/native/syscall.ts) and the helper's
 * one function for the socket, not libc's wrappers: bun:ffi compiles a
 * trampoline for each function it binds (~0.15 ms each, at every OCI create).
 */
import { call, F } from "./helper.ts";
import { strerror } from "./libc.ts";
import { AT_FDCWD, addr, cpath, sys } from "./syscall.ts";

const errnoText = (r: number) => strerror(-r).toLowerCase();
const S_IFIFO = 0o010000;

export function mkfifo(path: string, mode: number): void {
  const at = cpath(path);
  const r = at < 0 ? at : sys("mknodat", AT_FDCWD, at, S_IFIFO | mode, 0);
  if (r < 0) throw new Error(`cannot create the fifo ${path}: ${errnoText(r)}`);
}

/** Sets a resource limit of process pid (-1: unlimited). */
export function setRlimit(pid: number, resource: number, soft: number, hard: number): void {
  const inf = 0xffffffffffffffffn;
  const lim = new BigUint64Array([soft < 0 ? inf : BigInt(soft), hard < 0 ? inf : BigInt(hard)]);
  const r = sys("prlimit64", pid, resource, addr(lim), 0);
  if (r < 0) throw new Error(errnoText(r));
}

/** A resource limit of process pid (-1: unlimited). */
export function getRlimit(pid: number, resource: number): { soft: number; hard: number } {
  const lim = new BigUint64Array(2);
  const r = sys("prlimit64", pid, resource, 0, addr(lim));
  if (r < 0) throw new Error(errnoText(r));
  const n = (v: bigint | undefined) => (v === undefined || v >= 0xffffffffffffffffn ? -1 : Number(v));
  return { soft: n(lim[0]), hard: n(lim[1]) };
}

/** Connects to the Unix socket at path and sends fd over it (SCM_RIGHTS), as runc's console socket protocol. */
export function sendFdTo(path: string, fd: number): void {
  const name = Buffer.from(path);
  if (name.length > 107) throw new Error(`the console socket path ${path} is too long (108 bytes at most)`);
  const sock = call(F.CONNECT_UNIX, name, name.length);
  if (sock < 0) throw new Error(`cannot connect to the console socket ${path}: ${errnoText(sock)}`);
  try {
    // runc sends the terminal's name as the payload; clients only take the fd
    const payload = new TextEncoder().encode("/dev/ptmx");
    const r = call(F.SEND, sock, payload, payload.length, fd);
    if (r < 0) throw new Error(`cannot send the terminal to the console socket ${path}: ${errnoText(r)}`);
  } finally {
    sys("close", sock);
  }
}

/**
 * An eventfd (close-on-exec, non-blocking: `events` polls it with read), for the
 * cgroup v1 OOM notification runc registers through cgroup.event_control.
 */
export function eventfd(): number {
  const EFD_CLOEXEC = 0o2000000;
  const EFD_NONBLOCK = 0o4000;
  const fd = sys("eventfd2", 0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw new Error(`cannot make an eventfd: ${errnoText(fd)}`);
  return fd;
}
