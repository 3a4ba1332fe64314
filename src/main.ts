/**
 * nsbox: the table of commands, global flags, and the one place where errors
 * become a line on stderr and an exit code.
 */

// first: its top level runs before any other module is evaluated
import "./early.ts";
import type { CommandDef } from "citty";
import pkg from "../package.json" with { type: "json" };
import { settleWarmUps } from "./cgroup/warm.ts";
import { type FlagsDef, parseFlags, str, toCitty } from "./cli/args.ts";
import * as execCli from "./cli/exec.ts";
import * as runCli from "./cli/run.ts";
import { EXIT, NsboxError } from "./errors.ts";
import { filter } from "./list.ts";
import { log as consola } from "./log.ts";
import { freeMemoryAfterExit, removalsPending } from "./native/exit.ts";
import { isOciCommandLine, SPEC_VERSION } from "./oci/dispatch.ts";
import { basename } from "./posixpath.ts";
import { fsErrorSentence, isFsError, setRootOrigins } from "./state/fserror.ts";
import { roots, setRoots } from "./state/paths.ts";
import { checkRootDir } from "./state/rootcheck.ts";
import { withoutDashes } from "./text.ts";
import { mark } from "./trace.ts";

const globalFlags = {
  root: { type: "string", description: "data root: rootfs cache and containers' layers (default /var/lib/nsbox; env NSBOX_ROOT)", valueHint: "DIR" },
  state: { type: "string", description: "state root (default /run/nsbox, or ROOT/run with --root; env NSBOX_STATE)", valueHint: "DIR" },
  debug: { type: "boolean", description: "print debug messages" },
  help: { type: "boolean", alias: "h", description: "show this help" },
  version: { type: "boolean", description: "print the version" },
} satisfies FlagsDef;

type Entry = { cmd: CommandDef; flags: FlagsDef; main: (argv: string[]) => Promise<number> };

/**
 * The commands, each loaded only when it is run (or for --help): evaluating every
 * command's modules (images, the OCI runtime, rootless...) on each start cost
 * milliseconds that `nsbox run` does not need.
 *
 * But run and exec, the commands whose start is measured against crun (issue 14),
 * are imported statically: the first import() in a process costs a Bun program
 * ~0.3 MiB of peak RSS (hello-world probes), and making none took run from 29.39
 * to 28.70 MiB and 2.7 ms off it (exec 1.8 ms), while evaluating their modules on
 * the other commands' start costs those nothing measurable (--version +0.22 ms,
 * within noise; bench/trace-notes.md, "Ninth stop").
 */
const commands: Record<string, () => Promise<Entry>> = {
  run: async () => ({ cmd: runCli.runCommand, flags: runCli.runFlags, main: runCli.run }),
  ps: async () => {
    const m = await import("./cli/ps.ts");
    return { cmd: m.psCommand, flags: m.psFlags, main: m.ps };
  },
  logs: async () => {
    const m = await import("./cli/logs.ts");
    return { cmd: m.logsCommand, flags: m.logsFlags, main: m.logs };
  },
  exec: async () => ({ cmd: execCli.execCommand, flags: execCli.execFlags, main: execCli.exec }),
  stop: async () => {
    const m = await import("./cli/stop.ts");
    return { cmd: m.stopCommand, flags: m.stopFlags, main: m.stop };
  },
  kill: async () => {
    const m = await import("./cli/stop.ts");
    return { cmd: m.killCommand, flags: m.killFlags, main: m.kill };
  },
  rm: async () => {
    const m = await import("./cli/stop.ts");
    return { cmd: m.rmCommand, flags: m.rmFlags, main: m.rm };
  },
  wait: async () => {
    const m = await import("./cli/stop.ts");
    return { cmd: m.waitCommand, flags: m.waitFlags, main: m.wait };
  },
  inspect: async () => {
    const m = await import("./cli/inspect.ts");
    return { cmd: m.inspectCommand, flags: m.inspectFlags, main: m.inspect };
  },
  stats: async () => {
    const m = await import("./cli/stats.ts");
    return { cmd: m.statsCommand, flags: m.statsFlags, main: m.stats };
  },
  ns: async () => {
    const m = await import("./cli/ns.ts");
    return { cmd: m.nsCommand, flags: m.nsFlags, main: m.ns };
  },
  pod: async () => {
    const m = await import("./cli/pod.ts");
    return { cmd: m.podCommand, flags: m.podFlags, main: m.pod };
  },
  network: async () => {
    const m = await import("./cli/network.ts");
    return { cmd: m.networkCommand, flags: m.networkFlags, main: m.network };
  },
  rootfs: async () => {
    const m = await import("./cli/rootfs.ts");
    return { cmd: m.rootfsCommand, flags: m.rootfsFlags, main: m.rootfs };
  },
  cleanup: async () => {
    const m = await import("./cli/cleanup.ts");
    return { cmd: m.cleanupCommand, flags: m.cleanupFlags, main: m.cleanup };
  },
  image: async () => {
    const m = await import("./cli/image.ts");
    return { cmd: m.imageCommand, flags: m.imageFlags, main: m.image };
  },
  images: async () => {
    const m = await import("./cli/image.ts");
    return { cmd: m.imagesCommand, flags: m.imagesFlags, main: m.images };
  },
  rmi: async () => {
    const m = await import("./cli/image.ts");
    return { cmd: m.rmiCommand, flags: m.rmiFlags, main: m.rmi };
  },
  export: async () => {
    const m = await import("./cli/export.ts");
    return { cmd: m.exportCommand, flags: m.exportFlags, main: m.exportContainer };
  },
  pull: async () => {
    const m = await import("./cli/pull.ts");
    return { cmd: m.pullCommand, flags: m.pullFlags, main: m.pull };
  },
  login: async () => {
    const m = await import("./cli/login.ts");
    return { cmd: m.loginCommand, flags: m.loginFlags, main: m.login };
  },
  logout: async () => {
    const m = await import("./cli/login.ts");
    return { cmd: m.logoutCommand, flags: m.logoutFlags, main: m.logout };
  },
  "userns-helper": async () => {
    const m = await import("./cli/userns-helper.ts");
    return { cmd: m.usernsHelperCommand, flags: m.usernsHelperFlags, main: m.usernsHelper };
  },
};

/** nsbox itself as citty sees it, for help output only. */
const mainCommand = () => ({
  meta: { name: "nsbox", version: pkg.version, description: "Containers from one file: namespaces, pivot_root, cgroups, networks and pods" },
  args: () => toCitty(globalFlags),
  subCommands: Object.fromEntries(Object.entries(commands).map(([k, load]) => [k, async () => (await load()).cmd])),
});

/** citty's help text; without its colours when stdout is not a terminal. */
async function usage(entry?: Entry): Promise<string> {
  // citty is loaded for help alone (see defineCommand in src/cli/args.ts)
  const { renderUsage } = await import("citty");
  const text = entry ? await renderUsage(entry.cmd, mainCommand()) : await renderUsage(mainCommand());
  // (the terminal module brings bun:ffi: loaded here, not at every start)
  const { isTerminal } = await import("./tty/relay.ts");
  const plain = isTerminal(1) ? text : text.replace(/\x1b\[[0-9;]*m/g, "");
  return plain.replace(/[ \t]+$/gm, "");
}

/** Set when the command that ran leaves its memory to the exit keeper (src/native/exit.ts): run and exec. */
let freeAfterExit = false;

export async function main(argv: string[], invokedAs = basename(process.argv0 ?? "")): Promise<number> {
  mark("main");
  // The runc command line (podman, containerd): see isOciCommandLine for the rule.
  if (isOciCommandLine(argv, invokedAs)) return (await import("./oci/cli.ts")).ociMain(argv);
  try {
    // Global flags come before the command, as with docker and runc.
    const split = commandIndex(argv);
    const globalArgv = split < 0 ? argv : argv.slice(0, split);
    const g = parseFlags("", globalArgv, globalFlags);
    if (g.flags.debug) consola.level = 4;
    setRoots({ root: str(g.flags.root), state: str(g.flags.state) });
    if (g.flags.version) {
      // the runtime-spec line as runc's --version has it (clients show it)
      console.log(`nsbox ${pkg.version}\nspec: ${SPEC_VERSION}`);
      return 0;
    }
    const name = split < 0 ? undefined : argv[split];
    if (!name || g.flags.help) {
      if (g.flags.help) {
        console.log(await usage());
        return 0;
      }
      console.error(await usage());
      return EXIT.NSBOX;
    }
    const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
    if (!load) throw new NsboxError(`unknown command "${name}" (see: nsbox --help)`);
    const entry = await load();
    mark("command loaded");
    const rest = argv.slice(split + 1);
    // --help applies to nsbox only before the container's command: `run R sh --help` is sh's.
    if (wantsHelp(rest, entry.flags)) {
      console.log(await usage(entry));
      return 0;
    }
    if (name !== "rootfs") checkRoots(str(g.flags.root), str(g.flags.state));
    const code = await entry.main(rest);
    // the commands that end holding the most memory (~30 MB) and whose callers wait on their exit
    freeAfterExit = name === "run" || name === "exec";
    return code;
  } catch (e) {
    // stdout closed by the reader (`nsbox logs ID | head`): stop quietly, as a SIGPIPE would
    if ((e as NodeJS.ErrnoException).code === "EPIPE") return 141;
    if (e instanceof NsboxError) {
      consola.error(e.message);
      return e.exitCode;
    }
    // a filesystem error nobody turned into a sentence: say what, where and why
    consola.error(isFsError(e) ? fsErrorSentence(e) : e);
    return EXIT.NSBOX;
  }
}

/** The data and state roots in use must be usable directories; the message names where each came from. */
function checkRoots(rootFlag: string | undefined, stateFlag: string | undefined) {
  const r = roots();
  const rootFrom = rootFlag ? "--root" : process.env.NSBOX_ROOT ? "NSBOX_ROOT" : "the data root";
  const stateFrom = stateFlag
    ? "--state"
    : process.env.NSBOX_STATE
      ? "NSBOX_STATE"
      : rootFlag || process.env.NSBOX_ROOT
        ? `the state root (${rootFrom}'s run/)`
        : "the state root";
  setRootOrigins(rootFrom, stateFrom);
  checkRootDir(r.data, rootFrom);
  checkRootDir(r.state, stateFrom);
}

/** Index of the command word: the first argument that is neither a global flag nor its value. */
function commandIndex(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") return i + 1 < argv.length ? i + 1 : -1;
    if (!a.startsWith("-")) return i;
    const key = withoutDashes(a).split("=")[0] as string;
    const def = (globalFlags as FlagsDef)[key] ?? Object.values(globalFlags as FlagsDef).find((f) => f.alias === key);
    if (def?.type === "string" && !a.includes("=")) i++;
  }
  return -1;
}

/** -h/--help among the flags before the first positional that starts a command. */
function wantsHelp(argv: string[], flags: FlagsDef): boolean {
  const positionals = filter(Object.values(flags), (f) => f.type === "positional").length;
  let seen = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") return false;
    if (a === "-h" || a === "--help") return true;
    if (!a.startsWith("-")) {
      if (++seen >= positionals && positionals > 0) return false;
      continue;
    }
    const key = withoutDashes(a).split("=")[0] as string;
    const def = flags[key] ?? Object.values(flags).find((f) => f.alias === key);
    if (def && def.type === "string" && !a.includes("=") && def.bare === undefined) i++;
  }
  return false;
}

// No top-level await (here or in any module): it would keep `bun build --bytecode` from precompiling the chunk.
if (import.meta.main)
  main(process.argv.slice(2)).then((code) => {
    // the cgroup warm-up's writers (src/early.ts) that a failed run left running: reaped, not left zombies
    settleWarmUps();
    if (freeAfterExit || removalsPending()) freeMemoryAfterExit();
    process.exit(code);
  });
