/**
 * Which cgroup layout this host has, read at run time from /proc/self/mountinfo
 * and /proc/self/cgroup:
 *   v2      one cgroup2 hierarchy (systemd's unified layout): all controllers there
 *   hybrid  v1 controllers, plus a cgroup2 mount (often /sys/fs/cgroup/unified)
 *           that holds few or no controllers: nsbox uses the v1 controllers
 *   v1      v1 controllers only
 * and where nsbox itself sits in each hierarchy (its cgroup, per controller on v1).
 */
import { readFileSync } from "../native/fs.ts";
import { isDigits } from "../text.ts";

export type CgroupMode = "v2" | "hybrid" | "v1" | "none";

export interface CgroupHost {
  mode: CgroupMode;
  /** the cgroup2 mount point (v2 and hybrid) */
  v2Mount?: string;
  /** our cgroup in the v2 hierarchy ("/..." relative to v2Mount) */
  v2Own?: string;
  /** v1 controller -> its mount point (co-mounted controllers share one) */
  v1Mounts: Map<string, string>;
  /** v1 controller -> our cgroup in that hierarchy */
  v1Own: Map<string, string>;
}

/** Mount points of cgroup filesystems: [mountpoint, fstype, super options]. */
export function cgroupMounts(mountinfo: string): { point: string; type: string; opts: string[] }[] {
  const out: { point: string; type: string; opts: string[] }[] = [];
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const [type, , superOpts] = line.slice(sep + 3).split(" ");
    if (type !== "cgroup" && type !== "cgroup2") continue;
    const point = unescapeSpaces(line.slice(0, sep).split(" ")[4] ?? "");
    out.push({ point, type, opts: (superOpts ?? "").split(",") });
  }
  return out;
}

/*
 * No regular expressions here: this parse runs in the first module of every
 * start (src/early.ts), and a program's first regular expression costs Bun
 * ~0.7 MiB and its compile (see src/text.ts).
 */
/** mountinfo writes a space in a path as "\\040". */
const unescapeSpaces = (t: string) => (t.includes("\\040") ? t.split("\\040").join(" ") : t);

export function parseCgroupHost(mountinfo: string, selfCgroup: string): CgroupHost {
  const host: CgroupHost = { mode: "none", v1Mounts: new Map(), v1Own: new Map() };
  for (const m of cgroupMounts(mountinfo)) {
    if (m.type === "cgroup2") {
      // several cgroup2 mounts may exist (containers bind it again): prefer /sys/fs/cgroup
      if (!host.v2Mount || m.point === "/sys/fs/cgroup") host.v2Mount = m.point;
    } else {
      for (const o of m.opts) {
        if (o === "rw" || o === "ro" || o.startsWith("name=") || o.includes("=") || o === "noprefix" || o === "clone_children") continue;
        if (!host.v1Mounts.has(o)) host.v1Mounts.set(o, m.point);
      }
    }
  }
  for (const line of selfCgroup.split("\n")) {
    // "ID:CONTROLLERS:PATH" (the path may hold colons)
    const a = line.indexOf(":");
    const b = a < 0 ? -1 : line.indexOf(":", a + 1);
    if (a <= 0 || b < 0 || !isDigits(line.slice(0, a))) continue;
    const ctrls = line.slice(a + 1, b);
    const path = line.slice(b + 1);
    if (ctrls === "") host.v2Own = path;
    else for (const c of ctrls.split(",")) if (!c.startsWith("name=")) host.v1Own.set(c, path);
  }
  const v1 = host.v1Mounts.size > 0;
  host.mode = host.v2Mount && !v1 ? "v2" : host.v2Mount && v1 ? "hybrid" : v1 ? "v1" : "none";
  return host;
}

let cached: CgroupHost | undefined;

export function detectCgroups(): CgroupHost {
  cached ??= parseCgroupHost(readFileSync("/proc/self/mountinfo", "utf8"), readFileSync("/proc/self/cgroup", "utf8"));
  return cached;
}
