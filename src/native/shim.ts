/**
 * The shim (csrc/shim.c): a static program of a few kilobytes, built by `make`
 * and embedded in nsbox, for the processes that must stay small (init, pause,
 * monitor). It runs from a sealed memfd, so the server needs no extra file and a
 * container cannot modify it through /proc/PID/exe.
 */
import { shimBytes } from "./embedded.ts";
import { MFD_ALLOW_SEALING, MFD_CLOEXEC, memfdWith, seal } from "./libc.ts";

let fd: number | undefined;

/** An fd (close-on-exec) of the sealed shim, created once per process. */
export function shimFd(): number {
  if (fd === undefined) {
    fd = memfdWith("nsbox-shim", shimBytes(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    seal(fd);
  }
  return fd;
}
