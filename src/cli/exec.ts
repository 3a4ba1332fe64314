/** `nsbox exec [-i] [-t] [-e K=V] [-w DIR] [-u USER] CONTAINER CMD [ARG...]`. */
import { containerPath, mergeEnv, parseEnv, resolveUser } from "../config/parse.ts";
import { execInContainer } from "../container/exec.ts";
import { fail } from "../errors.ts";
import { readFileInRoot } from "../rootfs/inroot.ts";
import { privilegedCaps, processCaps } from "../security/capabilities.ts";
import { mark } from "../trace.ts";
import { bool, defineCommand, type FlagsDef, list, parseFlags, str, toCitty } from "./args.ts";
import { lookupRunning } from "./common.ts";

export const execFlags = {
  container: { type: "positional", description: "the container (name, id or unique id prefix)", required: true },
  command: { type: "positional", description: "the command and its arguments", required: true },
  interactive: { type: "boolean", alias: "i", description: "keep stdin open" },
  tty: { type: "boolean", alias: "t", description: "give the command a terminal from the container's /dev/pts" },
  env: { type: "string", alias: "e", multiple: true, description: "set an environment variable (KEY=VALUE)", valueHint: "KEY=VALUE" },
  workdir: { type: "string", alias: "w", description: "working directory (default: the container's)", valueHint: "DIR" },
  user: { type: "string", alias: "u", description: "run as uid[:gid] or name[:group] (default: the container's user)", valueHint: "USER" },
  privileged: { type: "boolean", description: "give the command every capability and no seccomp filter (as docker exec --privileged)" },
} satisfies FlagsDef;

export const execCommand = defineCommand({ meta: { name: "exec", description: "Run a command in a running container" }, args: () => toCitty(execFlags) });

export async function exec(argv: string[]): Promise<number> {
  const p = parseFlags("exec", argv, execFlags, 1);
  const ref = p.positionals[0];
  if (!ref) fail('"nsbox exec" needs a container and a command, e.g.: nsbox exec web /bin/sh');
  if (p.rest.length === 0) fail(`"nsbox exec" needs a command to run in ${ref}`);
  const v = await lookupRunning(ref);
  mark("container found");
  const proc = v.config.spec.process;
  let user = proc.user;
  const u = str(p.flags.user);
  if (u !== undefined && v.status === "running") {
    const root = `/proc/${v.state.init?.pid}/root`;
    const r = resolveUser(u, readFileInRoot(root, "/etc/passwd"), readFileInRoot(root, "/etc/group"));
    user = { uid: r.uid, gid: r.gid, additionalGids: r.additionalGids, name: u };
  }
  // The container's own settings, for this process's user (docker: a non-root user
  // holds no capability); --privileged: every capability, no filter.
  const privileged = bool(p.flags.privileged);
  const bounding = privileged ? privilegedCaps() : proc.capabilities?.bounding;
  const capabilities = bounding ? processCaps(bounding, user.uid) : undefined;
  const seccomp = privileged ? undefined : v.config.spec.linux.seccomp;
  // the filter `run` compiled for it, by the key it recorded (undefined for an OCI container's own profile)
  const seccompKey = seccomp ? v.config.spec.nsbox?.seccompKey : undefined;
  const tty = bool(p.flags.tty);
  if (tty && bool(p.flags.interactive) && !process.stdin.isTTY) fail("the input device is not a terminal: drop -t, or run nsbox from a terminal");
  return execInContainer(v, {
    args: p.rest,
    env: mergeEnv(proc.env, tty && !proc.env.some((e) => e.startsWith("TERM=")) ? ["TERM=xterm"] : [], parseEnv(list(p.flags.env), process.env)),
    cwd: str(p.flags.workdir) !== undefined ? containerPath(str(p.flags.workdir) as string, "--workdir") : proc.cwd,
    user,
    tty,
    interactive: bool(p.flags.interactive),
    capabilities,
    noNewPrivileges: proc.noNewPrivileges,
    seccomp,
    seccompKey,
  });
}
