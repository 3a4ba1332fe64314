/**
 * The few system calls the OCI verbs need that Node has no API for: mkfifo
 * (exec.fifo), prlimit (process.rlimits on the waiting process), and a Unix
 * socket connection to pass the pty master to --console-socket (SCM_RIGHTS,
 * sent by the helper's nsb_send), and an eventfd for `events`' OOM notices.
 * libc is already mapped: dlopen costs ~0.2 ms.
 */
import { dlopen, FFIType, ptr, toArrayBuffer } from "bun:ffi";
import { call, F } from "./helper.ts";
import { strerror } from "./libc.ts";

let lib: ReturnType<typeof open> | undefined;
function open() {
  return dlopen("libc.so.6", {
    mkfifo: { args: [FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
    prlimit: { args: [FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    eventfd: { args: [FFIType.u32, FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
}
const libc = () => {
  lib ??= open();
  return lib.symbols;
};
function errnoText(): string {
  const p = libc().__errno_location();
  const v = p ? (new Int32Array(toArrayBuffer(p, 0, 4))[0] ?? 0) : 0;
  return strerror(v).toLowerCase();
}

export function mkfifo(path: string, mode: number): void {
  if (libc().mkfifo(Buffer.from(`${path}\0`), mode) !== 0) throw new Error(`cannot create the fifo ${path}: ${errnoText()}`);
}

/** Sets a resource limit of process pid (-1: unlimited). */
export function setRlimit(pid: number, resource: number, soft: number, hard: number): void {
  const inf = 0xffffffffffffffffn;
  const lim = new BigUint64Array([soft < 0 ? inf : BigInt(soft), hard < 0 ? inf : BigInt(hard)]);
  if (libc().prlimit(pid, resource, ptr(lim), null) !== 0) throw new Error(errnoText());
}

/** A resource limit of process pid (-1: unlimited). */
export function getRlimit(pid: number, resource: number): { soft: number; hard: number } {
  const lim = new BigUint64Array(2);
  if (libc().prlimit(pid, resource, null, ptr(lim)) !== 0) throw new Error(errnoText());
  const n = (v: bigint | undefined) => (v === undefined || v >= 0xffffffffffffffffn ? -1 : Number(v));
  return { soft: n(lim[0]), hard: n(lim[1]) };
}

/** Connects to the Unix socket at path and sends fd over it (SCM_RIGHTS), as runc's console socket protocol. */
export function sendFdTo(path: string, fd: number): void {
  const AF_UNIX = 1;
  const SOCK_STREAM = 1;
  const SOCK_CLOEXEC = 0o2000000;
  const sock = libc().socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) throw new Error(`cannot make a socket: ${errnoText()}`);
  try {
    const name = Buffer.from(path);
    if (name.length > 107) throw new Error(`the console socket path ${path} is too long (108 bytes at most)`);
    const addr = new Uint8Array(110);
    new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
    addr.set(name, 2);
    if (libc().connect(sock, ptr(addr), 2 + name.length + 1) !== 0) throw new Error(`cannot connect to the console socket ${path}: ${errnoText()}`);
    // runc sends the terminal's name as the payload; clients only take the fd
    const payload = new TextEncoder().encode("/dev/ptmx");
    const r = call(F.SEND, sock, payload, payload.length, fd);
    if (r < 0) throw new Error(`cannot send the terminal to the console socket ${path}: ${strerror(-r).toLowerCase()}`);
  } finally {
    libc().close(sock);
  }
}

/**
 * An eventfd (close-on-exec, non-blocking: `events` polls it with read), for the
 * cgroup v1 OOM notification runc registers through cgroup.event_control.
 */
export function eventfd(): number {
  const EFD_CLOEXEC = 0o2000000;
  const EFD_NONBLOCK = 0o4000;
  const fd = libc().eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw new Error(`cannot make an eventfd: ${errnoText()}`);
  return fd;
}
