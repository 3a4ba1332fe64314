/**
 * A container's namespaces as the kernel shows them in /proc/PID/ns (what lsns
 * and `ls -la /proc/PID/ns` read): type and inode, and which other containers
 * share each one.
 */
import { readdirSync, readlinkSync } from "../native/fs.ts";
import type { ContainerView } from "./lifecycle.ts";

export const NS_TYPES = ["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts"] as const;

export interface NsInfo {
  type: string;
  inode: number;
  /** the link text, e.g. "net:[4026532280]" */
  link: string;
  path: string;
}

export function namespacesOf(pid: number): NsInfo[] {
  const out: NsInfo[] = [];
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/ns`);
  } catch {
    return out;
  }
  for (const type of NS_TYPES) {
    if (!names.includes(type)) continue;
    const path = `/proc/${pid}/ns/${type}`;
    try {
      const link = readlinkSync(path);
      out.push({ type, inode: Number(/\[(\d+)\]/.exec(link)?.[1] ?? 0), link, path });
    } catch {
      // the process went away
    }
  }
  return out;
}

/** For each namespace inode: the containers (names or short ids) whose PID 1 is in it. */
export function sharing(views: ContainerView[]): Map<number, string[]> {
  const map = new Map<number, string[]>();
  for (const v of views) {
    if (v.status !== "running" || !v.state.init) continue;
    for (const ns of namespacesOf(v.state.init.pid)) {
      const who = v.config.name ?? v.id.slice(0, 12);
      const list = map.get(ns.inode) ?? [];
      if (!list.includes(who)) map.set(ns.inode, [...list, who]);
    }
  }
  return map;
}
