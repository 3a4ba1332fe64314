/**
 * Linux capabilities: names, docker's default set, --cap-add/--cap-drop, and the
 * five sets a process gets (OCI process.capabilities).
 *
 * docker (moby oci/caps) and podman give a container the 14 capabilities below
 * and nothing else. Since CVE-2022-24769 neither fills the inheritable set, and
 * ambient stays empty: a non-root user then holds no capability after execve,
 * and root gets exactly the bounding set.
 */
import { filter, map, zeroPad } from "../list.ts";
import { readFileSync } from "../native/fs.ts";
import { SecurityError } from "./errors.ts";

/** Capability names by number (include/uapi/linux/capability.h). */
export const CAP_NAMES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
] as const;

/** docker's default set (moby oci/caps/defaults.go), in its order. */
export const DEFAULT_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** OCI process.capabilities. */
export interface Capabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
  inheritable: string[];
  ambient: string[];
}

let lastCapCache: number | undefined;
/** The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap). */
export function lastCap(): number {
  if (lastCapCache === undefined) {
    try {
      lastCapCache = Number(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8").trim());
    } catch {
      lastCapCache = CAP_NAMES.length - 1;
    }
  }
  return lastCapCache;
}

/** Every capability this kernel knows. */
export function allCaps(): string[] {
  return CAP_NAMES.slice(0, lastCap() + 1);
}

let heldCache: Set<string> | undefined;
/**
 * The capabilities nsbox itself holds (its permitted set): no process can give
 * its child more. Root usually holds all, but not always (a host whose init
 * dropped CAP_SYS_RESOURCE from every bounding set, say). Rootless, nsbox holds
 * none, but a container's root gets, in its own user namespace, every one of
 * nsbox's bounding set (and none on the host).
 */
export function heldCaps(): Set<string> {
  if (!heldCache) {
    const set = process.getuid?.() === 0 ? "CapPrm" : "CapBnd";
    const status = readFileSync("/proc/self/status", "utf8");
    const at = status.indexOf(`\n${set}:`);
    const hex = at < 0 ? "0" : status.slice(at + set.length + 2, status.indexOf("\n", at + 1)).trim();
    // two 32-bit halves: no BigInt arithmetic per capability
    const lo = Number.parseInt(hex.slice(-8), 16) || 0;
    const hi = Number.parseInt(hex.slice(0, -8) || "0", 16) || 0;
    heldCache = new Set(filter(allCaps(), (_, i) => ((i < 32 ? lo >>> i : hi >>> (i - 32)) & 1) === 1));
  }
  return heldCache;
}

/** --privileged: every capability that nsbox can give (all the kernel knows, less any nsbox lacks). */
export function privilegedCaps(): string[] {
  const held = heldCaps();
  return filter(allCaps(), (c) => held.has(c));
}

/** "net_admin", "CAP_NET_ADMIN", "Cap_Net_Admin" -> "CAP_NET_ADMIN"; "all" -> "ALL"; unknown ones are refused by name. */
export function capName(text: string, flag: string): string {
  const t = text.trim().toUpperCase();
  if (t === "ALL" || t === "CAP_ALL") return "ALL";
  const name = t.startsWith("CAP_") ? t : `CAP_${t}`;
  const n = CAP_NAMES.indexOf(name as (typeof CAP_NAMES)[number]);
  if (n < 0 || !/^CAP_[A-Z_]+$/.test(name))
    throw new SecurityError(`${flag} ${JSON.stringify(text)}: no such capability (names as in capabilities(7), e.g. NET_ADMIN or CAP_NET_ADMIN, or ALL)`);
  if (n > lastCap())
    throw new SecurityError(`${flag} ${JSON.stringify(text)}: this kernel does not know ${name} (its last capability is ${CAP_NAMES[lastCap()]})`);
  return name;
}

/**
 * The capability set from docker's rules: the defaults (or all, privileged),
 * then --cap-drop, then --cap-add, where ALL means every capability; an add wins
 * over a drop of the same name (docker: "--cap-drop ALL --cap-add CHOWN" keeps CHOWN).
 */
export function resolveCaps(o: { add?: string[]; drop?: string[]; privileged?: boolean; base?: string[] }): string[] {
  const add = map(o.add ?? [], (c) => capName(c, "--cap-add"));
  const drop = map(o.drop ?? [], (c) => capName(c, "--cap-drop"));
  if (o.privileged) return privilegedCaps();
  const held = heldCaps();
  for (const a of add)
    if (a !== "ALL" && !held.has(a))
      throw new SecurityError(`--cap-add ${a}: nsbox itself does not hold ${a} on this host (its bounding set lacks it), so no container can get it`);
  let set = new Set(o.base ?? DEFAULT_CAPS);
  if (drop.includes("ALL")) set = new Set();
  for (const d of drop) if (d !== "ALL" && !add.includes(d)) set.delete(d);
  if (add.includes("ALL")) set = new Set(privilegedCaps());
  for (const a of add) if (a !== "ALL") set.add(a);
  // the kernel's order, so that inspect and tests read them the same way every time; a
  // default nsbox lacks (none on a usual host) is left out rather than failing every run
  return filter(allCaps(), (c) => set.has(c) && held.has(c));
}

/** The five sets as docker gives them: root gets the set in bounding/effective/permitted; others bounding only. */
export function processCaps(caps: string[], uid: number): Capabilities {
  const held = uid === 0 ? [...caps] : [];
  return { bounding: [...caps], effective: held, permitted: [...held], inheritable: [], ambient: [] };
}

/** A set of names as a 64-bit mask, split into [low word, high word] as the helper reads it. */
export function capMask(names: readonly string[]): [number, number] {
  let lo = 0;
  let hi = 0;
  for (const name of names) {
    const n = CAP_NAMES.indexOf(name as (typeof CAP_NAMES)[number]);
    if (n < 0) throw new SecurityError(`unknown capability ${JSON.stringify(name)} in the container's configuration`);
    if (n < 32) lo |= 1 << n;
    else hi |= 1 << (n - 32);
  }
  return [lo >>> 0, hi >>> 0];
}

/** The mask as /proc/PID/status prints it (CapEff: 00000000a80425fb). */
export function capHex(names: readonly string[]): string {
  const [lo, hi] = capMask(names);
  return zeroPad(hi.toString(16), 8) + zeroPad(lo.toString(16), 8);
}
