/**
 * What every container gets unless told otherwise: the filesystems of a Linux
 * userland, the usual device nodes, an environment. The same defaults as the OCI
 * config that `runc spec` writes, so a config.json maps onto them one to one.
 */
import type { Device, Mount } from "./spec.ts";

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function defaultMounts(): Mount[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
  ];
}

const dev = (path: string, major: number, minor: number): Device => ({ path, type: "c", major, minor, fileMode: 0o666 });

export function defaultDevices(): Device[] {
  return [dev("/dev/null", 1, 3), dev("/dev/zero", 1, 5), dev("/dev/full", 1, 7), dev("/dev/random", 1, 8), dev("/dev/urandom", 1, 9), dev("/dev/tty", 5, 0)];
}

/** Links every /dev has (target, link). */
export const DEV_LINKS: [string, string][] = [
  ["/proc/self/fd", "/dev/fd"],
  ["/proc/self/fd/0", "/dev/stdin"],
  ["/proc/self/fd/1", "/dev/stdout"],
  ["/proc/self/fd/2", "/dev/stderr"],
  ["pts/ptmx", "/dev/ptmx"],
  ["/proc/kcore", "/dev/core"],
];

/** docker's defaults: PATH, HOSTNAME, HOME, and TERM=xterm when there is a terminal. */
export function defaultEnv(opts: { hostname: string; home: string; tty: boolean }): string[] {
  const env = [`PATH=${DEFAULT_PATH}`, `HOSTNAME=${opts.hostname}`, `HOME=${opts.home}`];
  if (opts.tty) env.push("TERM=xterm");
  return env;
}
