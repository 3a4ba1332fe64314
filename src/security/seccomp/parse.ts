/**
 * Profile JSON -> the OCI `linux.seccomp` a container gets, docker's way
 * (moby/profiles/seccomp/seccomp_linux.go setupSeccomp): archMap picks the native arch and
 * its sub-architectures; a rule is dropped when an `excludes` condition holds or an
 * `includes` condition does not (caps against the bounding set, arches against the native
 * arch, minKernel against the kernel release). Unknown syscall names are not errors: a
 * profile written for a newer kernel or another arch must still load.
 */
import { release } from "node:os";
import { kernelVersion } from "../../kernel.ts";
import { FAMILIES } from "./arches.ts";
import { filteredArches, unknownNames } from "./compile.ts";
import { MOBY_DEFAULT_PROFILE } from "./default-profile.ts";
import { parseJsonExact } from "./json.ts";
import { type DockerProfile, type LinuxSyscall, type ProfileFilter, type Resolved, type ResolveOptions, SeccompError } from "./types.ts";
import { checkAction, checkArchitecture, checkArgs, checkErrno, checkNames } from "./validate.ts";

/** Reads a docker or OCI seccomp profile and resolves it for one container. Throws SeccompError. */
export function parseProfile(jsonText: string, opts: ResolveOptions): Resolved {
  const data = parseJsonExact(jsonText, "seccomp profile");
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new SeccompError(`seccomp profile must be a JSON object with "defaultAction" and "syscalls"`);
  }
  return resolveProfile(data as DockerProfile, opts);
}

/** moby's default profile for these capabilities, arch and kernel. */
export function defaultSeccomp(opts: ResolveOptions): Resolved {
  return resolveProfile(MOBY_DEFAULT_PROFILE, opts);
}

/** The docker-shape profile, already parsed, resolved for one container. */
export function resolveProfile(p: DockerProfile, opts: ResolveOptions): Resolved {
  const family = FAMILIES[opts.arch];
  const caps = new Set(opts.caps.map(capName));
  const kernel = parseKernel(opts.kernel ?? release(), "kernel release");
  const defaultAction = checkAction(p.defaultAction, "seccomp profile defaultAction");
  const defaultErrnoRet = checkErrno(p.defaultErrnoRet, "seccomp profile defaultErrnoRet");

  if (p.architectures?.length && p.archMap?.length) {
    throw new SeccompError(`seccomp profile has both "architectures" and "archMap": keep one of them`);
  }
  const architectures = (p.architectures ?? []).map((a, i) => checkArchitecture(a, `seccomp profile architectures[${i}]`));
  for (const [i, m] of (p.archMap ?? []).entries()) {
    const at = `seccomp profile archMap[${i}]`;
    checkArchitecture(m?.architecture, `${at}.architecture`);
    const subs = (m.subArchitectures ?? []).map((s, j) => checkArchitecture(s, `${at}.subArchitectures[${j}]`));
    if (m.architecture === family.native) architectures.push(m.architecture, ...subs);
  }

  if (p.syscalls !== undefined && p.syscalls !== null && !Array.isArray(p.syscalls)) {
    throw new SeccompError(`seccomp profile "syscalls" must be a list of rules`);
  }
  const syscalls: LinuxSyscall[] = [];
  for (const [i, s] of (p.syscalls ?? []).entries()) {
    const at = `seccomp profile syscalls[${i}]`;
    if (typeof s !== "object" || s === null) throw new SeccompError(`${at} must be an object with "names" and "action"`);
    // The legacy single "name" (moby: used when non-empty, an error next to a non-empty "names").
    const legacy = typeof s.name === "string" && s.name !== "";
    if (legacy && s.names?.length) throw new SeccompError(`${at} has both "name" and "names": keep "names"`);
    const names = checkNames(legacy ? [s.name] : s.names, at);
    const action = checkAction(s.action, `${at}.action`);
    const errnoRet = checkErrno(s.errnoRet, `${at}.errnoRet`);
    const args = checkArgs(s.args, at);
    const excludes = checkFilter(s.excludes, `${at}.excludes`);
    const includes = checkFilter(s.includes, `${at}.includes`);
    if (excludes && matchesAny(excludes, caps, family.moby, kernel)) continue;
    if (includes && !matchesAll(includes, caps, family.moby, kernel)) continue;
    const rule: LinuxSyscall = { names, action };
    if (errnoRet !== undefined) rule.errnoRet = errnoRet;
    if (args?.length) rule.args = args;
    syscalls.push(rule);
  }

  const out: Resolved = { defaultAction, architectures, syscalls, unknown: [] };
  if (defaultErrnoRet !== undefined) out.defaultErrnoRet = defaultErrnoRet;
  if (p.flags?.length) out.flags = p.flags;
  if (p.listenerPath) out.listenerPath = p.listenerPath;
  if (p.listenerMetadata) out.listenerMetadata = p.listenerMetadata;
  out.unknown = unknownNames(syscalls, filteredArches(architectures, opts.arch));
  return out;
}

interface Filter {
  caps: string[];
  arches: string[];
  minKernel?: [number, number];
}

function checkFilter(f: ProfileFilter | undefined, where: string): Filter | undefined {
  if (f === undefined || f === null) return undefined;
  const strings = (v: unknown, field: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new SeccompError(`${where}.${field} must be a list of strings`);
    return v;
  };
  const out: Filter = { caps: strings(f.caps, "caps").map(capName), arches: strings(f.arches, "arches") };
  if (f.minKernel !== undefined && f.minKernel !== null && f.minKernel !== "") out.minKernel = parseMinKernel(f.minKernel, `${where}.minKernel`);
  return out;
}

/** excludes: any one condition that holds drops the rule (moby checks arches, then each cap, then the kernel). */
function matchesAny(f: Filter, caps: Set<string>, arch: string[], kernel: [number, number]): boolean {
  if (f.arches.some((a) => arch.includes(a))) return true;
  if (f.caps.some((c) => caps.has(c))) return true;
  return f.minKernel !== undefined && kernelAtLeast(kernel, f.minKernel);
}

/** includes: every listed condition must hold (all caps, the native arch among arches, kernel >= minKernel). */
function matchesAll(f: Filter, caps: Set<string>, arch: string[], kernel: [number, number]): boolean {
  if (f.arches.length && !f.arches.some((a) => arch.includes(a))) return false;
  if (!f.caps.every((c) => caps.has(c))) return false;
  return f.minKernel === undefined || kernelAtLeast(kernel, f.minKernel);
}

function kernelAtLeast([k, m]: [number, number], [wantK, wantM]: [number, number]): boolean {
  return k > wantK || (k === wantK && m >= wantM);
}

/** "6.1.0-13-amd64", "3.12-rc5" -> [6, 1]: like moby, only version and major revision count. */
function parseKernel(text: string, what: string): [number, number] {
  const v = kernelVersion(text);
  if (!v) throw new SeccompError(`${what} ${JSON.stringify(text)} does not start with "<version>.<major>" (e.g. "6.1")`);
  return v;
}

/** minKernel is exactly "<version>.<major>" in moby's format. */
function parseMinKernel(v: unknown, where: string): [number, number] {
  if (typeof v !== "string" || !/^\d+\.\d+$/.test(v) || /^0+\.0+$/.test(v)) {
    throw new SeccompError(`${where} ${JSON.stringify(v)} is not a kernel version: write "<version>.<major>", e.g. "4.8"`);
  }
  return parseKernel(v, where);
}

/** "sys_admin" and "SYS_ADMIN" mean CAP_SYS_ADMIN, the form profiles use. */
function capName(c: string): string {
  const up = c.toUpperCase();
  return up.startsWith("CAP_") ? up : `CAP_${up}`;
}
