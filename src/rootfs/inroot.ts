/**
 * Reading a file of an untrusted rootfs from the host, as if chrooted into it: a
 * symlink like /etc/passwd -> /etc/shadow must resolve inside the rootfs, never to
 * the host's file. Used for /etc/passwd and /etc/group before the container exists.
 */
import { filter } from "../list.ts";
import { lstatSync, readFileSync, readlinkSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";

const MAX_LINKS = 40;

/** The host path of `path` resolved inside `root` (symlinks followed within it), or undefined. */
export function resolveInRoot(root: string, path: string): string | undefined {
  let todo = filter(path.split("/"), Boolean);
  const done: string[] = [];
  let links = 0;
  while (todo.length) {
    const seg = todo.shift() as string;
    if (seg === ".") continue;
    if (seg === "..") {
      done.pop();
      continue;
    }
    const host = join(root, ...done, seg);
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(host);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return undefined;
      const target = readlinkSync(host);
      if (target.startsWith("/")) done.length = 0;
      todo = [...filter(target.split("/"), Boolean), ...todo];
    } else done.push(seg);
  }
  return join(root, ...done);
}

/** Text of a regular file inside the rootfs, or undefined when there is none. */
export function readFileInRoot(root: string, path: string): string | undefined {
  const host = resolveInRoot(root, path);
  if (!host) return undefined;
  try {
    if (!lstatSync(host).isFile()) return undefined;
    return readFileSync(host, "utf8");
  } catch {
    return undefined;
  }
}
