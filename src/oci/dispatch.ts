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
import { existsSync } from "node:fs";
import { join } from "node:path";

/** The runtime-spec version nsbox follows (1.0.x to this one), for --version and features. */
export const SPEC_VERSION = "1.2.0";

/** The runtime's state root when --root is not given (runc's is /run/runc). */
export const DEFAULT_OCI_ROOT = "/run/nsbox-runc";

/** Verbs nsbox's docker-style CLI lacks: these alone select the runc syntax. */
export const OCI_ONLY_VERBS = ["create", "start", "state", "delete", "list", "ls", "spec", "features", "pause", "resume", "update", "events"];

/** Is this command line runc's rather than nsbox's docker-style one? (see README "nsbox under podman and containerd") */
export function isOciCommandLine(argv: string[], invokedAs: string): boolean {
  if (invokedAs === "runc" || invokedAs === "nsbox-runc") return true;
  const verbAt = argv.findIndex((a, i) => !a.startsWith("-") && !(i > 0 && takesValue(argv[i - 1] as string)));
  const before = verbAt < 0 ? argv : argv.slice(0, verbAt);
  if (before.some((a) => /^--?(log|log-format|systemd-cgroup|criu)(=|$)/.test(a))) return true;
  // --root before the verb is nsbox's too; with a runc verb flag after it, it is runc's
  const verb = verbAt < 0 ? undefined : argv[verbAt];
  if (verb && OCI_ONLY_VERBS.includes(verb)) return true;
  const after = verbAt < 0 ? [] : argv.slice(verbAt + 1);
  // runc's flags come before the id (urfave/cli stops at the first word): what follows is the command's
  // (run's -p is nsbox's --publish; only exec's -p is runc's --process)
  const runcOnly = verb === "run" ? /^(--bundle|-b|--console-socket)(=|$)/ : /^(--process|-p|--console-socket)(=|$)/;
  if ((verb === "run" || verb === "exec") && flagsBeforeId(after).some((a) => runcOnly.test(a))) return true;
  if (verb === "kill" || verb === "ps" || verb === "exec") {
    const id = firstPositional(after);
    const rootAt = before.findIndex((a) => a === "--root" || a.startsWith("--root="));
    const root = rootAt < 0 ? DEFAULT_OCI_ROOT : before[rootAt]?.includes("=") ? before[rootAt]?.slice(7) : before[rootAt + 1];
    if (id && root && /^[\w+\-.]+$/.test(id) && existsSync(join(root, id, "state.json"))) return true;
  }
  return false;
}

/** Flags of runc's kill, ps and exec that take a value (the id is the first word that is no flag and no value). */
const VALUE_FLAGS =
  /^(--?(bundle|console-socket|cwd|env|user|additional-gids|process|pid-file|process-label|apparmor|cap|preserve-fds|cgroup|format|name|volume|network|net|workdir|memory|cpus|hostname|entrypoint)|-[eugpcfbvwm])$/;

function flagsBeforeId(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (!a.startsWith("-") || a === "--") break;
    out.push(a);
    if (VALUE_FLAGS.test(a)) i++;
  }
  return out;
}

function firstPositional(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (!a.startsWith("-")) return a;
    if (VALUE_FLAGS.test(a)) i++;
  }
  return undefined;
}

function takesValue(flag: string): boolean {
  return /^--?(root|log|log-format|criu|rootless|state)$/.test(flag);
}
