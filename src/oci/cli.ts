/**
 * The runc command line (as podman/conmon and containerd's runc shim call it):
 *
 *   nsbox [--root DIR] [--log FILE] [--log-format text|json] [--debug]
 *         [--systemd-cgroup] VERB [flags] ID ...
 *
 * Flags as urfave/cli takes them: --flag value, --flag=value, -flag, short
 * aliases. Errors are one line on stderr and, with --log, a line in the log
 * file ({"level":"error","msg":...,"time":...} with --log-format json, which
 * podman shows its user); the exit code is runc's: 1.
 */

import pkg from "../../package.json" with { type: "json" };
import { EXIT, NsboxError } from "../errors.ts";
import { log } from "../log.ts";
import { appendFileSync } from "../native/fs.ts";
import { mark } from "../trace.ts";
import { ConfigError, SPEC_VERSION } from "./config.ts";
import { ociCreate } from "./create.ts";
import { ociEvents } from "./events.ts";
import { ociExec } from "./exec.ts";
import { ociDelete, ociKill, ociList, ociPause, ociPids, ociStart, ociState, signalNumber } from "./lifecycle.ts";
import { ociRun } from "./run.ts";
import { DEFAULT_OCI_ROOT, setOciRoot } from "./state.ts";
import { featuresJson, writeSpec } from "./template.ts";
import { ociUpdate, type UpdateFlags } from "./update.ts";

type Kind = "bool" | "string" | "list";
type Defs = Record<string, { kind: Kind; alias?: string }>;
interface Parsed {
  flags: Record<string, string | boolean | string[]>;
  args: string[];
}

const GLOBAL: Defs = {
  root: { kind: "string" },
  log: { kind: "string" },
  "log-format": { kind: "string" },
  debug: { kind: "bool" },
  "systemd-cgroup": { kind: "bool" },
  criu: { kind: "string" },
  rootless: { kind: "string" },
  version: { kind: "bool", alias: "v" },
  help: { kind: "bool", alias: "h" },
};
const CREATE: Defs = {
  bundle: { kind: "string", alias: "b" },
  "console-socket": { kind: "string" },
  "pid-file": { kind: "string" },
  "no-pivot": { kind: "bool" },
  "no-new-keyring": { kind: "bool" },
  "preserve-fds": { kind: "string" },
};
const VERBS: Record<string, Defs> = {
  create: CREATE,
  run: { ...CREATE, detach: { kind: "bool", alias: "d" }, keep: { kind: "bool" } },
  start: {},
  state: {},
  kill: { all: { kind: "bool", alias: "a" } },
  delete: { force: { kind: "bool", alias: "f" } },
  list: { format: { kind: "string", alias: "f" }, quiet: { kind: "bool", alias: "q" } },
  ps: { format: { kind: "string", alias: "f" } },
  pause: {},
  resume: {},
  spec: { bundle: { kind: "string", alias: "b" }, rootless: { kind: "bool" } },
  features: {},
  update: {
    resources: { kind: "string", alias: "r" },
    memory: { kind: "string" },
    "memory-swap": { kind: "string" },
    "memory-reservation": { kind: "string" },
    "kernel-memory": { kind: "string" },
    "cpu-quota": { kind: "string" },
    "cpu-period": { kind: "string" },
    "cpu-share": { kind: "string" },
    "cpu-rt-period": { kind: "string" },
    "cpu-rt-runtime": { kind: "string" },
    "cpuset-cpus": { kind: "string" },
    "cpuset-mems": { kind: "string" },
    "pids-limit": { kind: "string" },
    "blkio-weight": { kind: "string" },
    "l3-cache-schema": { kind: "string" },
    "mem-bw-schema": { kind: "string" },
  },
  events: { stats: { kind: "bool" }, interval: { kind: "string" } },
  exec: {
    "console-socket": { kind: "string" },
    cwd: { kind: "string" },
    env: { kind: "list", alias: "e" },
    tty: { kind: "bool", alias: "t" },
    user: { kind: "string", alias: "u" },
    "additional-gids": { kind: "list", alias: "g" },
    process: { kind: "string", alias: "p" },
    detach: { kind: "bool", alias: "d" },
    "pid-file": { kind: "string" },
    "process-label": { kind: "string" },
    apparmor: { kind: "string" },
    "no-new-privs": { kind: "bool" },
    cap: { kind: "list", alias: "c" },
    "preserve-fds": { kind: "string" },
    cgroup: { kind: "list" },
    "ignore-paused": { kind: "bool" },
  },
};
function parse(argv: string[], defs: Defs, stopAtPositional: boolean): Parsed & { rest: string[] } {
  const flags: Parsed["flags"] = {};
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      if (stopAtPositional) return { flags, args, rest: argv.slice(i) };
      args.push(a);
      continue;
    }
    const [rawKey, inline] = a.replace(/^--?/, "").split(/=(.*)/s, 2) as [string, string | undefined];
    const key = defs[rawKey] ? rawKey : Object.keys(defs).find((k) => defs[k]?.alias === rawKey);
    if (!key) throw new ConfigError(`flag provided but not defined: ${a}`);
    const def = defs[key] as Defs[string];
    if (def.kind === "bool") flags[key] = inline === undefined ? true : inline === "true" || inline === "1";
    else {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new ConfigError(`flag needs an argument: ${a}`);
      if (def.kind === "list") flags[key] = [...((flags[key] as string[]) ?? []), v];
      else flags[key] = v;
    }
  }
  return { flags, args, rest: [] };
}

let logFile: string | undefined;
let logJson = false;

/** consola's types as logrus's level names. */
const LEVEL: Record<string, string> = {
  fatal: "fatal",
  error: "error",
  warn: "warning",
  log: "info",
  info: "info",
  success: "info",
  debug: "debug",
  trace: "debug",
};

function logLine(level: string, msg: string) {
  if (!logFile) return;
  const time = new Date().toISOString();
  const line = logJson ? JSON.stringify({ level, msg, time }) : `time="${time}" level=${level} msg=${JSON.stringify(msg)}`;
  try {
    appendFileSync(logFile, `${line}\n`);
  } catch {
    // the log is best effort; stderr has the message
  }
}

export async function ociMain(argv: string[]): Promise<number> {
  mark("oci");
  try {
    const g = parse(argv, GLOBAL, true);
    logFile = g.flags.log as string | undefined;
    logJson = g.flags["log-format"] === "json";
    if (g.flags["log-format"] && g.flags["log-format"] !== "json" && g.flags["log-format"] !== "text")
      throw new ConfigError(`--log-format ${g.flags["log-format"]}: use text or json`);
    if (g.flags.debug) log.level = 4;
    // every message nsbox prints (warnings, --debug's) goes to --log too, as runc's logrus
    if (logFile) log.addReporter({ log: (o) => logLine(LEVEL[o.type] ?? "info", o.args.map((x) => (x instanceof Error ? x.message : String(x))).join(" ")) });
    setOciRoot((g.flags.root as string | undefined) ?? DEFAULT_OCI_ROOT);
    if (g.flags.version) {
      console.log(`nsbox version ${pkg.version}\nspec: ${SPEC_VERSION}`);
      return 0;
    }
    const [verbIn, ...rest] = g.rest;
    const verb = verbIn === "ls" ? "list" : verbIn;
    if (!verb || g.flags.help) {
      console.log(`usage: nsbox [--root DIR] [--log FILE] [--log-format text|json] VERB ...\nverbs: ${Object.keys(VERBS).join(", ")}, exec`);
      return verb ? 0 : 1;
    }
    const defs = VERBS[verb];
    if (!defs) throw new ConfigError(`unknown command ${JSON.stringify(verb)} (runc syntax)`);
    // exec ID COMMAND... and ps ID [ps options]: the flags end at the id; what follows is not ours
    if (verb === "exec") return await execVerb(parse(rest, defs, true));
    const p = verb === "ps" ? psArgs(rest, defs) : parse(rest, defs, false);
    return await runVerb(verb, p);
  } catch (e) {
    const msg = clientWords(e);
    log.error(msg);
    return 1; // runc's code for every failure; the message says which
  }
}

async function execVerb(p: Parsed & { rest: string[] }): Promise<number> {
  const f = p.flags;
  const [id, ...cmd] = p.rest;
  if (!id) throw new ConfigError("exec needs a container id");
  for (const k of ["process-label", "apparmor", "cgroup"]) if (f[k] !== undefined) throw new ConfigError(`exec --${k} is not supported by nsbox`);
  const preserve = Number(f["preserve-fds"] ?? 0);
  if (!Number.isInteger(preserve) || preserve < 0 || preserve > 1000)
    throw new ConfigError(`--preserve-fds ${f["preserve-fds"]}: give a number of fds (0-1000)`);
  return await ociExec({
    id,
    args: cmd[0] === "--" ? cmd.slice(1) : cmd,
    processFile: f.process as string | undefined,
    tty: f.tty === true,
    consoleSocket: f["console-socket"] as string | undefined,
    pidFile: f["pid-file"] as string | undefined,
    detach: f.detach === true,
    cwd: f.cwd as string | undefined,
    env: (f.env as string[] | undefined) ?? [],
    user: f.user as string | undefined,
    additionalGids: (f["additional-gids"] as string[] | undefined) ?? [],
    caps: (f.cap as string[] | undefined) ?? [],
    noNewPrivs: f["no-new-privs"] === true,
    preserveFds: preserve,
  });
}

function psArgs(argv: string[], defs: Defs): Parsed {
  const p = parse(argv, defs, true);
  return { flags: p.flags, args: p.rest };
}

/** As runc: the host's `ps` (-ef unless options follow the id), only the container's lines. */
function psTable(pids: number[], options: string[]): string {
  const r = Bun.spawnSync(["ps", ...(options.length ? options : ["-ef"])], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new ConfigError(`ps ${options.join(" ")} failed: ${r.stderr.toString().trim().split("\n")[0]}`);
  const [head = "", ...rows] = r.stdout.toString().trimEnd().split("\n");
  const col = head.trim().split(/\s+/).indexOf("PID");
  if (col < 0) throw new ConfigError(`ps ${options.join(" ")}: its output has no PID column`);
  const want = new Set(pids.map(String));
  return [head, ...rows.filter((l) => want.has(l.trim().split(/\s+/)[col] ?? ""))].join("\n");
}

/**
 * Clients sort a runtime's errors by runc's words (podman: "no such file or
 * directory" -> exit 127, "permission denied" -> 126): a command that could not
 * be exec'd says them too.
 */
function clientWords(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (!(e instanceof NsboxError)) return msg;
  if (e.exitCode === EXIT.NOT_FOUND && !/no such file or directory/i.test(msg)) return `${msg} (executable file not found: no such file or directory)`;
  if (e.exitCode === EXIT.CANNOT_EXEC && !/permission denied|operation not permitted/i.test(msg)) return `${msg} (permission denied)`;
  return msg;
}

function needId(p: Parsed, verb: string): string {
  const id = p.args[0];
  if (!id) throw new ConfigError(`${verb} needs a container id`);
  return id;
}

async function runVerb(verb: string, p: Parsed): Promise<number> {
  const f = p.flags;
  const s = (k: string) => f[k] as string | undefined;
  switch (verb) {
    case "create":
    case "run": {
      const preserve = Number(s("preserve-fds") ?? 0);
      if (!Number.isInteger(preserve) || preserve < 0 || preserve > 1000)
        throw new ConfigError(`--preserve-fds ${s("preserve-fds")}: give a number of fds (0-1000)`);
      const o = {
        id: needId(p, verb),
        bundle: s("bundle") ?? ".",
        pidFile: s("pid-file"),
        consoleSocket: s("console-socket"),
        preserveFds: preserve,
        newKeyring: f["no-new-keyring"] !== true,
        noPivot: f["no-pivot"] === true,
      };
      if (verb === "create") {
        await ociCreate(o);
        return 0;
      }
      return await ociRun(o, f.detach === true);
    }
    case "start":
      await ociStart(needId(p, verb));
      return 0;
    case "state":
      console.log(ociState(needId(p, verb)));
      return 0;
    case "kill":
      await ociKill(needId(p, verb), signalNumber(p.args[1]), f.all === true);
      return 0;
    case "delete":
      await ociDelete(needId(p, verb), f.force === true);
      return 0;
    case "list":
      if (f.quiet)
        console.log(
          JSON.parse(ociList("json"))
            .map((c: { id: string }) => c.id)
            .join("\n"),
        );
      else console.log(ociList((s("format") ?? "table") as string));
      return 0;
    case "ps": {
      const pids = ociPids(needId(p, verb));
      if (s("format") === "json") console.log(JSON.stringify(pids));
      else console.log(psTable(pids, p.args.slice(1)));
      return 0;
    }
    case "pause":
    case "resume":
      await ociPause(needId(p, verb), verb === "pause");
      return 0;
    case "spec":
      writeSpec(s("bundle") ?? ".", f.rootless === true);
      return 0;
    case "update": {
      for (const k of ["kernel-memory", "cpu-rt-period", "cpu-rt-runtime", "l3-cache-schema", "mem-bw-schema"])
        if (f[k] !== undefined) throw new ConfigError(`update --${k} is not supported by nsbox`);
      ociUpdate(needId(p, verb), f as UpdateFlags);
      return 0;
    }
    case "events":
      await ociEvents(needId(p, verb), f.stats === true, s("interval"));
      return 0;
    case "features":
      console.log(JSON.stringify(featuresJson(), null, 2));
      return 0;
  }
  throw new ConfigError(`unknown command ${verb}`);
}
