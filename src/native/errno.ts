/**
 * Linux errno numbers (the same on x86_64 and aarch64) as names, and the texts
 * node's errors use for them, so that an error of src/native/fs.ts reads exactly
 * as node:fs's did: `ENOENT: no such file or directory, open '/x'`.
 */

const TABLE: [number, string, string][] = [
  [1, "EPERM", "operation not permitted"],
  [2, "ENOENT", "no such file or directory"],
  [3, "ESRCH", "no such process"],
  [4, "EINTR", "interrupted system call"],
  [5, "EIO", "i/o error"],
  [6, "ENXIO", "no such device or address"],
  [7, "E2BIG", "argument list too long"],
  [8, "ENOEXEC", "exec format error"],
  [9, "EBADF", "bad file descriptor"],
  [10, "ECHILD", "no child processes"],
  [11, "EAGAIN", "resource temporarily unavailable"],
  [12, "ENOMEM", "not enough memory"],
  [13, "EACCES", "permission denied"],
  [14, "EFAULT", "bad address in system call argument"],
  [16, "EBUSY", "resource busy or locked"],
  [17, "EEXIST", "file already exists"],
  [18, "EXDEV", "cross-device link not permitted"],
  [19, "ENODEV", "no such device"],
  [20, "ENOTDIR", "not a directory"],
  [21, "EISDIR", "illegal operation on a directory"],
  [22, "EINVAL", "invalid argument"],
  [23, "ENFILE", "file table overflow"],
  [24, "EMFILE", "too many open files"],
  [25, "ENOTTY", "inappropriate ioctl for device"],
  [26, "ETXTBSY", "text file is busy"],
  [27, "EFBIG", "file too large"],
  [28, "ENOSPC", "no space left on device"],
  [29, "ESPIPE", "invalid seek"],
  [30, "EROFS", "read-only file system"],
  [31, "EMLINK", "too many links"],
  [32, "EPIPE", "broken pipe"],
  [34, "ERANGE", "result too large"],
  [36, "ENAMETOOLONG", "name too long"],
  [38, "ENOSYS", "function not implemented"],
  [39, "ENOTEMPTY", "directory not empty"],
  [40, "ELOOP", "too many symbolic links encountered"],
  [61, "ENODATA", "no data available"],
  [75, "EOVERFLOW", "value too large for defined data type"],
  [95, "ENOTSUP", "operation not supported on socket"],
  [116, "ESTALE", "stale file handle"],
  [122, "EDQUOT", "disk quota exceeded"],
];

// (a loop, not TABLE.map: this runs at every start, and the first call of one of
// JavaScriptCore's array builtins compiles it from source, see src/list.ts)
const BY_NUMBER = new Map<number, { name: string; text: string }>();
for (const [n, name, text] of TABLE) BY_NUMBER.set(n, { name, text });

/** "ENOENT" for 2; "errno 200" for a number not in the table. */
export function errnoName(n: number): string {
  return BY_NUMBER.get(n)?.name ?? `errno ${n}`;
}

export interface ErrnoError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
  dest?: string;
}

/** An error shaped as node:fs's: `CODE: text, syscall 'path' -> 'dest'`, with code, errno (negative), syscall, path, dest. */
export function errnoError(n: number, syscall: string, path?: string, dest?: string): ErrnoError {
  const e = BY_NUMBER.get(n);
  const code = e?.name ?? `E${n}`;
  const where = path === undefined ? "" : dest === undefined ? ` '${path}'` : ` '${path}' -> '${dest}'`;
  const err = new Error(`${code}: ${e?.text ?? `errno ${n}`}, ${syscall}${where}`) as ErrnoError;
  err.code = code;
  if (path !== undefined) err.path = path;
  if (dest !== undefined) err.dest = dest;
  err.syscall = syscall;
  err.errno = -n;
  return err;
}
