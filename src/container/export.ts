/**
 * `nsbox export`: a running container's root filesystem (its overlay: the image
 * or rootfs below, the container's changes above) as a tar, as `docker export`.
 *
 * How: nsbox enters the container's root (chroot to /proc/PID/root, which is
 * the merged overlay as the container sees it) and walks it from "/". Symlinks
 * then resolve inside the container, never on the host, whatever the container
 * does meanwhile. The filesystems mounted in the container (/proc, /sys, /dev,
 * volumes, tmpfs) are not part of its root: their mount points are archived
 * empty, as docker does. Only a running container has a root: nsbox removes a
 * container's layer when it exits.
 *
 * The archive goes to a temporary name beside the target (opened before the
 * chroot) and is renamed once complete, after nsbox is back in the host's root.
 */
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync } from "node:fs";
import { TarWriter } from "../image/tarwriter.ts";
import { enterRoot, leaveRoot } from "../native/chroot.ts";
import { basename, dirname, join, resolve } from "../posixpath.ts";
import { randomHex } from "../state/random.ts";

/** Mount points inside the container, as its own mountinfo shows them (relative to its root). */
function mountPoints(pid: number): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n")) {
    const mp = line.split(" ")[4];
    if (mp && mp !== "/") out.add(mp.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8))));
  }
  return out;
}

export function exportRoot(pid: number, out: string): { files: number; bytes: number } {
  const mounts = mountPoints(pid);
  const target = resolve(out);
  const tmp = join(dirname(target), `.${basename(target)}.${randomHex(6)}.nsbox-export`);
  const fd = openSync(tmp, "wx", 0o644);
  const hostRoot = openSync("/", "r");
  let entered = false;
  let done = false;
  const stats = { files: 0, bytes: 0 };
  try {
    enterRoot(`/proc/${pid}/root`);
    entered = true;
    const tar = new TarWriter(fd);
    const links = new Map<string, string>();
    const walk = (path: string) => {
      for (const name of readdirSync(path).sort()) {
        const p = path === "/" ? `/${name}` : `${path}/${name}`;
        let st: ReturnType<typeof lstatSync>;
        try {
          st = lstatSync(p);
        } catch {
          continue; // removed meanwhile
        }
        const base = { name: p.slice(1), mode: st.mode, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
        const mounted = mounts.has(p);
        stats.files++;
        if (st.isDirectory()) {
          tar.entry({ ...base, name: `${base.name}/`, type: "5" });
          if (!mounted) walk(p);
        } else if (st.isFile()) {
          const key = `${st.dev}:${st.ino}`;
          const first = st.nlink > 1 ? links.get(key) : undefined;
          if (first) tar.entry({ ...base, type: "1", linkname: first });
          else {
            if (st.nlink > 1) links.set(key, base.name);
            const size = mounted ? 0 : st.size;
            tar.entry({ ...base, type: "0", size }, p);
            stats.bytes += size;
          }
        } else if (st.isSymbolicLink()) tar.entry({ ...base, type: "2", linkname: readlinkSync(p) });
        else if (st.isCharacterDevice() || st.isBlockDevice()) {
          // glibc's major() and minor() of a 64-bit dev_t
          const rdev = Number(st.rdev);
          const lo = rdev >>> 0;
          const hi = Math.floor(rdev / 2 ** 32);
          const devmajor = ((lo >>> 8) & 0xfff) | (hi & ~0xfff);
          const devminor = (lo & 0xff) | ((lo >>> 12) & ~0xff);
          tar.entry({ ...base, type: st.isCharacterDevice() ? "3" : "4", devmajor, devminor });
        } else if (st.isFIFO()) tar.entry({ ...base, type: "6" });
        // sockets are not archived (tar cannot hold them)
      }
    };
    walk("/");
    tar.end();
    done = true;
  } finally {
    if (entered) leaveRoot(hostRoot);
    closeSync(hostRoot);
    closeSync(fd);
    if (done) renameSync(tmp, target);
    else rmSync(tmp, { force: true });
  }
  return stats;
}
