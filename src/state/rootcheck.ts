/**
 * The data and state roots must be directories nsbox can keep files in. A path
 * that is a file (--state /dev/null) or a kernel filesystem (--root /proc) would
 * otherwise make every listing empty and every creation fail later with a raw
 * errno: refuse it up front, naming the flag (or variable) it came from.
 */

import { fail, sysMessage } from "../errors.ts";
import { accessSync, constants, statfsSync, statSync } from "../native/fs.ts";
import { dirname, resolve } from "../posixpath.ts";

/** statfs(2) magic numbers of filesystems that cannot hold nsbox's files. */
const KERNEL_FS = new Map<number, string>([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x27e0eb, "cgroup"],
  [0x63677270, "cgroup2"],
  [0x1cd1, "devpts"],
  [0x64626720, "debugfs"],
  [0x73636673, "securityfs"],
  [0x74726163, "tracefs"],
  [0xcafe4a11, "bpf"],
  [0x6165676c, "pstore"],
  [0x62656570, "configfs"],
  [0xde5e81e4, "efivarfs"],
  [0x42494e4d, "binfmt_misc"],
  [0x6e736673, "nsfs"],
  [0x65735543, "fusectl"],
  [0x19800202, "mqueue"],
]);

/** Throws when dir cannot serve as a root: `what` names where it came from ("--state", "NSBOX_ROOT"). */
export function checkRootDir(dir: string, what: string): void {
  const given = `${what} ${dir}`;
  // The root may not exist yet (nsbox creates it): look at what is there on the way.
  let p = resolve(dir);
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === "ENOENT" || code === "ENOTDIR") && p !== "/") {
        p = dirname(p);
        continue;
      }
      fail(`${given} cannot be used: ${p}: ${sysMessage(e)}`);
    }
    if (!isDir)
      fail(p === resolve(dir) ? `${given} is not a directory: give a directory (created if missing)` : `${given} cannot be created: ${p} is not a directory`);
    // rootless: a root closed to the caller (another user's) would list as empty: say so instead
    if (process.getuid?.() !== 0) {
      try {
        accessSync(p, p === resolve(dir) ? constants.R_OK | constants.W_OK | constants.X_OK : constants.W_OK | constants.X_OK);
      } catch (e) {
        fail(`${given} cannot be used: ${p}: ${sysMessage(e)} (give a directory you may write)`);
      }
    }
    break;
  }
  let type: number;
  try {
    type = Number(statfsSync(p).type);
  } catch {
    return; // statfs refused: let the real use report the problem
  }
  const fs = KERNEL_FS.get(type);
  if (fs) fail(`${given} is on a ${fs} filesystem (${p}), which cannot hold nsbox's files: give a directory on a disk or a tmpfs`);
}
