/**
 * The seam between containers and the seccomp compiler (src/security/seccomp/):
 * which profile a container gets, and its BPF program for this machine.
 *
 * Resolving moby's profile and compiling it costs 4-15 ms (and loading the
 * syscall tables a few more), against a container start of about 40 ms. The
 * result depends only on its inputs, so it is kept in the state root (a tmpfs:
 * it goes at reboot, with the kernel release it was made for), one small file
 * per input, written whole or not at all; the compiler module is loaded only
 * when a run finds no such file.
 */

import pkg from "../../package.json" with { type: "json" };
import { release } from "../kernel.ts";
import { mkdirSync, readBytesSync, renameSync, writeFileSync } from "../native/fs.ts";
import { utf8Decode } from "../native/syscall.ts";
import { join } from "../posixpath.ts";
import { roots } from "../state/paths.ts";
import { isHex } from "../text.ts";
import { capHex } from "./capabilities.ts";
import { SecurityError } from "./errors.ts";
import type { LinuxSeccomp, NativeArch } from "./seccomp/types.ts";

export type { LinuxSeccomp } from "./seccomp/types.ts";

/**
 * Bump when the compiler's output or the entries' layout changes (2: each entry
 * has its filter beside it, KEY.bpf; 3: an entry is one file, and docker's
 * default profile is named, not hashed).
 */
const FORMAT = 3;

export function nativeArch(): NativeArch {
  if (process.arch === "x64") return "x86_64";
  if (process.arch === "arm64") return "aarch64";
  throw new SecurityError(`nsbox has no seccomp tables for the ${process.arch} architecture`);
}

interface Entry {
  profile: LinuxSeccomp;
  unknown: string[];
  filter: Uint8Array;
  /** the cache key it is kept under (see recordedFilter) */
  key?: string;
}

const cacheDir = () => join(roots().state, "seccomp");

/* Argument values above 2^53 are bigints, which JSON cannot hold: in the spec
 * (config.json) and the cache they are strings "<digits>n". */
const toJson = (_: string, v: unknown) => (typeof v === "bigint" ? `${v}n` : v);
const fromJson = (_: string, v: unknown) => (typeof v === "string" && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v);
/** The profile as the spec stores it (bigints as strings). */
const storable = (p: LinuxSeccomp): LinuxSeccomp => JSON.parse(JSON.stringify(p, toJson));

/** What an entry is valid for, besides its own input: the compiler (nsbox's version), the architecture, the kernel. */
const validFor = () => `${FORMAT}-${pkg.version}-${nativeArch()}-${release()}`;

/** A user's profile: its text is part of the key, hashed (Bun.SHA256 maps less than Bun.CryptoHasher). */
const hashedKey = (parts: string[]): string => Bun.SHA256.hash([validFor(), ...parts].join("\0"), "hex").slice(0, 32);

/**
 * docker's default profile, the one nearly every run gets: a key that says what
 * it is valid for, no hash to compute (the hasher's first use costs ~0.15 ms and
 * maps ~1 MiB). The kernel release may hold any character but "/": the entry
 * keeps the key as it is and load compares it; only the file's name is made safe.
 */
const defaultKey = (caps: string[]): string => `default-${validFor()}-${capHex(caps)}`;
/** A character a cache file's name may hold: letters, digits, _ . + - (no regular expressions here: see src/text.ts). */
const safeChar = (c: string) => (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "_.+-".includes(c);
const fileName = (key: string) => {
  let out = "";
  for (let i = 0; i < key.length; i++) out += safeChar(key[i] as string) ? key[i] : "_";
  return out;
};
/** What a file name can be: default-... or 32 hex digits (a container's recorded seccompKey is checked against it before it names a file). */
const isFileName = (key: string) => {
  if (isHex(key, 32)) return true;
  if (!key.startsWith("default-") || key.length <= 8) return false;
  for (let i = 0; i < key.length; i++) if (!safeChar(key[i] as string)) return false;
  return true;
};

/*
 * An entry is one small file read in one go: a JSON line (what it is: the key,
 * the unknown syscalls, the profile's length in bytes), the profile as the spec
 * stores it, then the filter's raw bytes (struct sock_filter[]: no base64 to
 * decode, no second JSON document to parse). KEY.bpf beside it holds the filter
 * alone, for exec (recordedFilter).
 */
function load(key: string): Entry | undefined {
  try {
    // (bytes, no Buffer: see src/native/fs.ts's scratchBuffer)
    const b = readBytesSync(join(cacheDir(), fileName(key)));
    const nl = b.indexOf(10);
    const head = JSON.parse(utf8Decode(b.subarray(0, nl)));
    if (head.format !== FORMAT || head.key !== key) return undefined;
    const end = nl + 1 + head.profile;
    const filter = b.subarray(end);
    if (filter.length === 0 || filter.length % 8) return undefined;
    return { profile: JSON.parse(utf8Decode(b.subarray(nl + 1, end))), unknown: head.unknown, filter };
  } catch {
    return undefined;
  }
}

function store(key: string, e: Entry): void {
  try {
    // the state root as the store makes it (a container's root in a user namespace must pass through it)
    mkdirSync(roots().state, { recursive: true, mode: 0o711 });
    mkdirSync(cacheDir(), { recursive: true, mode: 0o700 });
    const name = fileName(key);
    // the filter alone first, raw: what `exec` reads (recordedFilter)
    const bpfTmp = join(cacheDir(), `.${name}.bpf.${process.pid}`);
    writeFileSync(bpfTmp, e.filter, { mode: 0o600 });
    renameSync(bpfTmp, join(cacheDir(), `${name}.bpf`));
    const tmp = join(cacheDir(), `.${name}.${process.pid}`);
    const profile = Buffer.from(JSON.stringify(e.profile, toJson));
    const head = Buffer.from(`${JSON.stringify({ format: FORMAT, key, unknown: e.unknown, profile: profile.length })}\n`);
    writeFileSync(tmp, Buffer.concat([head, profile, e.filter]), { mode: 0o600 });
    renameSync(tmp, join(cacheDir(), name));
  } catch {
    // only a speed-up: the next run compiles again
  }
}

/**
 * docker's default profile (text undefined) or a user's (the file's text), resolved
 * for these capabilities, with its filter. A bad profile throws a SecurityError
 * naming the file.
 */
export async function seccompFor(text: string | undefined, caps: string[], path?: string): Promise<Entry> {
  const key = text === undefined ? defaultKey(caps) : hashedKey(["profile", text, ...caps]);
  const known = load(key);
  if (known) {
    memo.set(known.profile, known.filter);
    return { ...known, key: fileName(key) };
  }
  const c = await import("./seccomp/index.ts");
  let r: ReturnType<typeof c.defaultSeccomp>;
  let filter: Uint8Array;
  try {
    const arch = nativeArch();
    r = text === undefined ? c.defaultSeccomp({ caps, arch }) : c.parseProfile(text, { caps, arch });
    const { unknown: _, ...profile } = r;
    filter = c.compileSeccomp(profile, arch).filter;
  } catch (e) {
    if (path && e instanceof Error) throw new SecurityError(`--security-opt seccomp=${path}: ${e.message}`);
    throw e;
  }
  const { unknown, ...profile } = r;
  const e = { profile: storable(profile), unknown, filter };
  store(key, e);
  store(filterKey(JSON.stringify(e.profile)), e);
  memo.set(e.profile, filter);
  return { ...e, key: fileName(key) };
}

/**
 * The filter kept under that file name (a container's spec.nsbox.seccompKey, recorded by
 * `run`), read raw: `exec` gets the container's filter without serializing and
 * hashing its profile and parsing a cache entry (1-3 ms and 2 MiB of an exec's
 * start). Undefined when the cache no longer holds it (then filterFor).
 */
export function recordedFilter(key: string | undefined): Uint8Array | undefined {
  if (!key || !isFileName(key)) return undefined;
  try {
    const bytes = readBytesSync(join(cacheDir(), `${key}.bpf`));
    // a BPF program is 8-byte instructions, at least one
    return bytes.length >= 8 && bytes.length % 8 === 0 ? bytes : undefined;
  } catch {
    return undefined;
  }
}

/** Filters of the profiles this process resolved (run: the spec holds that very object). */
const memo = new WeakMap<LinuxSeccomp, Uint8Array>();
const filterKey = (json: string) => hashedKey(["filter", json]);

/** The filter of a profile already resolved (a container's, for `exec`). */
export async function filterFor(profile: LinuxSeccomp): Promise<Uint8Array> {
  const mine = memo.get(profile);
  if (mine) return mine;
  const text = JSON.stringify(profile, toJson);
  const key = filterKey(text);
  const known = load(key);
  if (known) return known.filter;
  const c = await import("./seccomp/index.ts");
  const filter = c.compileSeccomp(JSON.parse(text, fromJson), nativeArch()).filter;
  store(key, { profile, unknown: [], filter });
  return filter;
}
