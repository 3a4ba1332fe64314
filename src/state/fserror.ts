/**
 * Filesystem errors as nsbox's sentences. Node's own text, `ENOENT: no such file
 * or directory, lstat './rootfs'`, names a syscall and says nothing of what the
 * path was for; this names the path's role (the state root as --state gave it,
 * the data root, a rootfs, a volume), the path, and the cause.
 */
import { sysMessage } from "../errors.ts";
import { roots } from "./paths.ts";

/** How each root was given ("--state", "NSBOX_ROOT", ...), for messages; set by main. */
const origin: { data?: string; state?: string } = {};

export function setRootOrigins(data: string, state: string): void {
  origin.data = data;
  origin.state = state;
}

const VERBS: Record<string, string> = {
  open: "open",
  mkdir: "create the directory",
  mkdtemp: "create a directory in",
  rename: "rename",
  lstat: "look up",
  stat: "look up",
  realpath: "resolve",
  readdir: "list",
  scandir: "list",
  rmdir: "remove",
  rm: "remove",
  unlink: "remove",
  write: "write",
  read: "read",
  symlink: "create the link",
  readlink: "read the link",
  chown: "change the owner of",
  chmod: "change the mode of",
  copyfile: "copy",
  access: "reach",
};

const HINTS: Record<string, string> = {
  EROFS: " (give a writable directory)",
  ENOSPC: " (the filesystem is full)",
  EDQUOT: " (a disk quota is exhausted)",
  ENOTDIR: " (a part of the path is a file, not a directory)",
  ELOOP: " (a symbolic link loop)",
  EACCES: " (permission denied: nsbox must run as root)",
};

export function isFsError(e: unknown): e is NodeJS.ErrnoException {
  const err = e as NodeJS.ErrnoException;
  // Bun refuses a path longer than PATH_MAX itself: its ENAMETOOLONG names the path, and no syscall
  return !!err && typeof err === "object" && typeof err.code === "string" && (typeof err.syscall === "string" || typeof err.path === "string");
}

/** The role of a path: "the state root /run/nsbox (--state)" when it is in one of nsbox's roots. */
function roleOf(path: string): string | undefined {
  const r = roots();
  const under = (root: string) => path === root || path.startsWith(`${root.replace(/\/$/, "")}/`);
  if (under(r.state)) return `the state root ${r.state}${origin.state ? ` (${origin.state})` : ""}`;
  if (under(r.data)) return `the data root ${r.data}${origin.data ? ` (${origin.data})` : ""}`;
  return undefined;
}

/** One sentence for a Node/Bun filesystem error: what (one of nsbox's roots, else `what`), where, why. */
export function fsErrorSentence(e: NodeJS.ErrnoException, what?: string): string {
  const path = e.path ?? "";
  // (without a syscall, the one Bun's message names: "ENAMETOOLONG: name too long, open '/x...'")
  const syscall = e.syscall ?? /, (\w+) '/.exec(e.message ?? "")?.[1];
  const verb = VERBS[syscall ?? ""] ?? syscall ?? "use";
  const role = roleOf(path) ?? what;
  // rootless, the fix is another place, not root
  const rootless = e.code === "EACCES" && process.getuid?.() !== 0;
  const hint = rootless ? (roleOf(path) ? " (give a directory you may write, or leave --root and --state unset)" : "") : HINTS[e.code ?? ""];
  const cause = `${sysMessage(e)}${hint ?? ""}`;
  const target = path ? ` ${path}` : "";
  return role ? `${role}: cannot ${verb}${target}: ${cause}` : `cannot ${verb}${target}: ${cause}`;
}
