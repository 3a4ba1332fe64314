/**
 * The running kernel's version, for the features nsbox chooses by it (overlayfs's
 * volatile option, overlayfs in a user namespace, seccomp profiles' minKernel).
 * Read without a regular expression: the engine's first use maps ~0.8 MiB, and
 * this runs on every start.
 */
import { addr, sys, utf8Decode } from "./native/syscall.ts";

let rel: string | undefined;

/** uname -r ("6.1.0-27-amd64"), read once (node:os's release() without loading node:os). */
export function release(): string {
  if (rel === undefined) {
    const u = new Uint8Array(390); // struct utsname: six fields of 65 bytes, the release third
    rel = sys("uname", addr(u)) === 0 ? utf8Decode(u.subarray(130, u.indexOf(0, 130))) : "";
  }
  return rel;
}

/** "6.18.44-fc-v857", "3.12-rc5" -> [6, 18], [3, 12] (as moby: only version and major revision); undefined if it does not start with "<version>.<major>". */
export function kernelVersion(rel: string = release()): [number, number] | undefined {
  const dot = rel.indexOf(".");
  if (dot <= 0) return undefined;
  const digits = (s: string) => {
    let n = 0;
    while (n < s.length && s.charCodeAt(n) >= 48 && s.charCodeAt(n) <= 57) n++;
    return s.slice(0, n);
  };
  const major = digits(rel.slice(0, dot));
  const minor = digits(rel.slice(dot + 1));
  if (major.length !== dot || minor === "") return undefined;
  return [Number(major), Number(minor)];
}

/** Whether the kernel is at least version.major; undefined when its release cannot be read. */
export function kernelAtLeast(version: number, major: number, rel?: string): boolean | undefined {
  const v = kernelVersion(rel);
  if (!v) return undefined;
  return v[0] > version || (v[0] === version && v[1] >= major);
}
