/**
 * A rootless user's roots must be the user's alone: created mode 0700, and, in a
 * directory others may write (/tmp), refused unless it is a real directory that
 * the user owns and nobody else can enter, since another user could have made
 * it first (or put a symlink there) to see or feed the containers' state.
 */

import { fail } from "../errors.ts";
import { lstatSync, mkdirSync } from "../native/fs.ts";
import { dirname } from "../posixpath.ts";

export function privateDir(path: string, what: string, shared = false): string {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    mkdirSync(path, { mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // EACCES and friends: the roots' own checks (checkRootDir) and first use say it better
    if (code !== "EEXIST") return path;
  }
  if (!shared) return path;
  const st = lstatSync(path);
  const uid = process.getuid?.();
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0)
    fail(
      `${what} ${path} is not a private directory of yours (it must be a directory owned by uid ${uid} with mode 0700): remove it, or set XDG_RUNTIME_DIR or --state`,
    );
  return path;
}
