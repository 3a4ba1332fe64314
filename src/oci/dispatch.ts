/**
 * When is a command line runc's rather than nsbox's docker-style one? No
 * wrapper script is needed on a server:
 *  - nsbox invoked as `runc` or `nsbox-runc` (make install adds the link);
 *  - runc's global flags before the verb: --log, --log-format, --systemd-cgroup,
 *    --criu (podman and containerd's shim always pass --log);
 *  - a verb nsbox's own CLI lacks (create, start, state, delete, list, spec...);
 *  - `run` with --bundle/-b or --console-socket, `exec` with --process/-p or
 *    --console-socket (before the id: after it they are the command's);
 *  - `kill`, `ps` or `exec` of an id that is an OCI container in the runtime
 *    root (--root's, else /run/nsbox-runc): runtime-tools and podman call
 *    `RUNTIME kill ID SIGNAL` with no other sign.
 * So `nsbox run ROOTFS CMD` and `nsbox exec CONTAINER CMD` keep their meaning.
 */
import { findIndex, some } from "../list.ts";
import { existsSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";

/** The runtime-spec version nsbox follows (1.0.x to this one), for --version and features. */
export const SPEC_VERSION = "1.2.0";

/** The runtime's state root when --root is not given (runc's is /run/runc). */
export const DEFAULT_OCI_ROOT = "/run/nsbox-runc";

/** Verbs nsbox's docker-style CLI lacks: these alone select the runc syntax. */
export const OCI_ONLY_VERBS = ["create", "start", "state", "delete", "list", "ls", "spec", "features", "pause", "resume", "update", "events"];

/*
 * Flags are told by name in sets, not by regular expressions: this runs at every
 * start, and each expression's first use compiled it (~0.37 ms for nsbox run).
 */

/** "--flag" and "-flag" for each name (urfave/cli, runc's parser, takes both). */
const dashed = (names: string[], into = new Set<string>()) => {
  for (const n of names) into.add(`-${n}`).add(`--${n}`);
  return into;
};
/** The flag's name without an "=value". */
const nameOf = (a: string) => {
  const eq = a.indexOf("=");
  return eq < 0 ? a : a.slice(0, eq);
};
/** runc's global flags that nsbox's own CLI lacks. */
const RUNC_GLOBAL = dashed(["log", "log-format", "systemd-cgroup", "criu"]);
/** Global flags that take a value (the verb is the first word that is neither a flag nor such a value). */
const GLOBAL_WITH_VALUE = dashed(["root", "log", "log-format", "criu", "rootless", "state"]);
/** run's and exec's flags that only runc's have (before the id). */
const RUNC_RUN = new Set(["--bundle", "-b", "--console-socket"]);
const RUNC_EXEC = new Set(["--process", "-p", "--console-socket"]);
/** A runtime id: letters, digits, _ + - . */
const isIdText = (id: string) => {
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 43 || c === 45 || c === 46;
    if (!ok) return false;
  }
  return id.length > 0;
};

/** Is this command line runc's rather than nsbox's docker-style one? (see README "nsbox under podman and containerd") */
export function isOciCommandLine(argv: string[], invokedAs: string): boolean {
  if (invokedAs === "runc" || invokedAs === "nsbox-runc") return true;
  const verbAt = findIndex(argv, (a, i) => !a.startsWith("-") && !(i > 0 && takesValue(argv[i - 1] as string)));
  const before = verbAt < 0 ? argv : argv.slice(0, verbAt);
  if (some(before, (a) => RUNC_GLOBAL.has(nameOf(a)))) return true;
  // --root before the verb is nsbox's too; with a runc verb flag after it, it is runc's
  const verb = verbAt < 0 ? undefined : argv[verbAt];
  if (verb && OCI_ONLY_VERBS.includes(verb)) return true;
  const after = verbAt < 0 ? [] : argv.slice(verbAt + 1);
  // runc's flags come before the id (urfave/cli stops at the first word): what follows is the command's
  // (run's -p is nsbox's --publish; only exec's -p is runc's --process)
  const runcOnly = verb === "run" ? RUNC_RUN : RUNC_EXEC;
  if ((verb === "run" || verb === "exec") && some(flagsBeforeId(after), (a) => runcOnly.has(nameOf(a)))) return true;
  if (verb === "kill" || verb === "ps" || verb === "exec") {
    const id = firstPositional(after);
    const rootAt = findIndex(before, (a) => a === "--root" || a.startsWith("--root="));
    const root = rootAt < 0 ? DEFAULT_OCI_ROOT : before[rootAt]?.includes("=") ? before[rootAt]?.slice(7) : before[rootAt + 1];
    if (id && root && isIdText(id) && existsSync(join(root, id, "state.json"))) return true;
  }
  return false;
}

/** Flags of runc's kill, ps and exec that take a value (the id is the first word that is no flag and no value). */
const VALUE_FLAGS = dashed(
  [
    "bundle",
    "console-socket",
    "cwd",
    "env",
    "user",
    "additional-gids",
    "process",
    "pid-file",
    "process-label",
    "apparmor",
    "cap",
    "preserve-fds",
    "cgroup",
    "format",
    "name",
    "volume",
    "network",
    "net",
    "workdir",
    "memory",
    "cpus",
    "hostname",
    "entrypoint",
  ],
  new Set(["-e", "-u", "-g", "-p", "-c", "-f", "-b", "-v", "-w", "-m"]),
);

function flagsBeforeId(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (!a.startsWith("-") || a === "--") break;
    out.push(a);
    if (VALUE_FLAGS.has(a)) i++;
  }
  return out;
}

function firstPositional(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (!a.startsWith("-")) return a;
    if (VALUE_FLAGS.has(a)) i++;
  }
  return undefined;
}

function takesValue(flag: string): boolean {
  return GLOBAL_WITH_VALUE.has(flag);
}
