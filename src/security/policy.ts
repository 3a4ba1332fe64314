/**
 * The security settings of a container, from docker's flags: capabilities,
 * no_new_privs, the seccomp profile, masked and read-only paths. The result goes
 * into the ContainerSpec (OCI process.capabilities, process.noNewPrivileges,
 * linux.seccomp, linux.maskedPaths, linux.readonlyPaths), so `exec` and
 * `inspect` read the very settings the container got.
 */
import { type Capabilities, processCaps, resolveCaps } from "./capabilities.ts";
import { parseSecurityOpts } from "./options.ts";
import { MASKED_PATHS, READONLY_PATHS } from "./paths.ts";
import { type LinuxSeccomp, seccompFor } from "./seccomp-policy.ts";

export interface SecurityFlags {
  privileged: boolean;
  capAdd: string[];
  capDrop: string[];
  securityOpt: string[];
  /** the container's user (root gets the capability set, others only the bounding set) */
  uid: number;
}

export interface Security {
  /** the capability set (bounding) the container's processes may hold */
  caps: string[];
  capabilities: Capabilities;
  noNewPrivileges: boolean;
  seccomp?: LinuxSeccomp;
  /** its BPF program for this machine */
  seccompFilter?: Uint8Array;
  /** "default" or the profile's path */
  seccompSource?: string;
  /** the key its filter is cached under (see recordedFilter) */
  seccompKey?: string;
  /** syscall names of a profile that this architecture lacks (ignored, as docker does) */
  unknownSyscalls: string[];
  maskedPaths: string[];
  readonlyPaths: string[];
  notes: string[];
}

/** Everything is checked here, before anything is created: a bad name, option or profile throws a SecurityError. */
export async function securityFromFlags(f: SecurityFlags): Promise<Security> {
  const opts = parseSecurityOpts(f.securityOpt);
  const caps = resolveCaps({ add: f.capAdd, drop: f.capDrop, privileged: f.privileged });
  let seccomp: LinuxSeccomp | undefined;
  let seccompFilter: Uint8Array | undefined;
  let seccompKey: string | undefined;
  let unknownSyscalls: string[] = [];
  // --privileged turns seccomp off unless a profile is asked for by name (as docker)
  if (opts.seccomp.mode === "profile" || (!f.privileged && opts.seccomp.mode === "default")) {
    const profile = opts.seccomp.mode === "profile" ? opts.seccomp : undefined;
    const r = await seccompFor(profile?.text, caps, profile?.path);
    seccomp = r.profile;
    seccompFilter = r.filter;
    seccompKey = r.key;
    unknownSyscalls = r.unknown;
  }
  const confined = !f.privileged && opts.systemPaths;
  return {
    caps,
    capabilities: processCaps(caps, f.uid),
    noNewPrivileges: opts.noNewPrivileges,
    seccomp,
    seccompFilter,
    seccompSource: opts.seccomp.mode === "profile" ? opts.seccomp.path : "default",
    seccompKey,
    unknownSyscalls,
    maskedPaths: confined ? [...MASKED_PATHS] : [],
    readonlyPaths: confined ? [...READONLY_PATHS] : [],
    notes: opts.notes,
  };
}
