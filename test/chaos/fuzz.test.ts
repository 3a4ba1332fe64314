/**
 * Chaos, part c: an argument fuzzer. A few hundred command lines generated from
 * the real flag table (flags.ts imports the FlagsDef objects of src/cli/*.ts),
 * with wrong types, huge and negative numbers, empty strings, control bytes,
 * very long values, unknown flags, missing and extra arguments, plus a
 * hand-made corpus of what the hostile run of issue 10 found. For each one:
 *   - the exit code is 125, 126 or 127 (or 0 when the combination is valid:
 *     then what it made is removed), and never 0 when an input is known bad;
 *   - stderr is one line "nsbox: ..." (one per reference for verbs that take
 *     several), without control bytes, stack traces, Bun's or the kernel's raw
 *     errors (warnings and notes may add lines);
 *   - it does not hang (but for what follows a live container: logs -f, wait, stats);
 *   - nothing is left behind: the state and data roots, the fixtures and the
 *     working directory are as before, no mounts, cgroups or processes.
 * Replay one case: NSBOX_CHAOS_SEED=S NSBOX_CHAOS_CASE=N bun test test/chaos/fuzz.test.ts
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { FlagsDef } from "../../src/cli/args.ts";
import { cgroupDirsOf, nsboxCgroupDirs, removeOwnCgroups, testCgroupParent } from "../helpers/cgroup.ts";
import { tarOf, writeLayout } from "../helpers/images.ts";
import { hostPid, pidAlive } from "../helpers/lifecycle.ts";
import { lsRecursive, mountLines, mountsBelow, type RunResult, tryKill, useNsbox } from "../helpers/nsbox.ts";
import {
  COMMANDS,
  CONTROL_VALUES,
  draw,
  FZ_IMAGE,
  flagPools,
  IMAGE_ACTIONS,
  MULTI_REF,
  NETWORK_POSITIONALS,
  options,
  type Places,
  type Pool,
  positionalPool,
  positionals,
  safeImageRef,
  UNKNOWN_FLAGS,
  unsafeReference,
  VERBS,
} from "./flags.ts";
import { Ids, stderrProblems, suiteProcesses } from "./host.ts";
import { chaosRng, type Rng } from "./rng.ts";
import { show } from "./run.ts";

const ctx = useNsbox("chaos-fuzz");
// safety nets under the pools' own rules (flags.ts): docker.io goes to a closed loopback port,
// and registry credentials are read and written in the suite's directory, not the user's
process.env.NSBOX_REGISTRY_MIRROR = "127.0.0.1:1";
process.env.DOCKER_CONFIG = join(ctx.tmp, "docker-config");
delete process.env.REGISTRY_AUTH_FILE;
delete process.env.XDG_RUNTIME_DIR;
const rng = chaosRng("fuzz");
/** Generated cases (the hand-made corpus comes on top). */
const CASES = 340;
const ONLY = process.env.NSBOX_CHAOS_CASE === undefined ? undefined : Number(process.env.NSBOX_CHAOS_CASE);
const TARGET = "fz-target";

interface Case {
  n: number;
  label: string;
  argv: string[];
  /** why nsbox must refuse it (empty: it may accept it) */
  reasons: string[];
  /** the verb's words in argv ("run", "image save") and where they start */
  verb: string;
  verbAt: number;
  /** an exact exit code (the hand-made corpus) */
  expectCode?: number;
  /** follows a live container (logs -f, wait, stats): killed after a moment, which is fine */
  mayBlock: boolean;
  /** error lines allowed (verbs with several references print one per bad one) */
  maxErrors: number;
}

const places: Places = {
  tmp: ctx.tmp,
  rootfs: ctx.rootfs,
  scratch: join(ctx.tmp, "scratch"),
  fix: join(ctx.tmp, "fix"),
  cgroupParent: testCgroupParent(),
  target: TARGET,
  layout: join(ctx.tmp, "fz-layout"),
  // set once the image is imported (beforeAll); the pools are read only after that
  imageId: "sha256:".padEnd(71, "0"),
};
/** flags the pools do not know yet (a new flag: give it a pool in flags.ts) */
const missingPools = new Set<string>();

/** Flags whose value is a number, a name or a keyword: control bytes and huge lengths are never valid there. */
const STRICT = new Set([
  "hostname",
  "name",
  "memory",
  "memory-swap",
  "memory-reservation",
  "cpus",
  "cpu-shares",
  "cpu-weight",
  "pids-limit",
  "cpuset-cpus",
  "cpuset-mems",
  "blkio-weight",
  "time",
  "tail",
  "signal",
  "userns",
  "cgroupns",
  "cgroup-manager",
  "net",
  "subnet",
  "publish",
  "share",
  "log-opt",
]);
const GENERIC: Pool = { ok: ["x"], bad: [], odd: ["", "-1", "99999999999999999999", ...CONTROL_VALUES, "y".repeat(5000)] };

/** run's rule (src/rootfs/prepare.ts isRootfsPath), from the working directory the cases run in. */
const isPathArg = (v: string) =>
  /^(\/|\.\/|\.\.\/|~\/)/.test(v) || v === "." || v === ".." || /\.(tar|tar\.gz|tgz|tar\.zst)$/.test(v) || (v !== "" && existsSync(join(places.scratch, v)));
/** The fuzzer's image, by name, id or short id (found in the store without a pull). */
const isStored = (v: string) =>
  v === FZ_IMAGE || (/^(sha256:)?[a-f0-9]{3,64}$/.test(v) && places.imageId.replace(/^sha256:/, "").startsWith(v.replace(/^sha256:/, "")));

/** One generated command line and what it must do. */
function generate(n: number, r: Rng): Case {
  const reasons: string[] = [];
  const globals: string[] = [];
  let readOnly = false;
  let helpWins = false;
  if (r.chance(0.15)) {
    const g = r.pick(["debug", "root", "state", "version", "help", "unknown"] as const);
    if (g === "debug") globals.push("--debug");
    else if (g === "version" || g === "help") {
      globals.push(g === "help" ? r.pick(["--help", "-h"]) : "--version");
      helpWins = true;
    } else if (g === "unknown") {
      globals.push(r.pick(UNKNOWN_FLAGS));
      reasons.push("an unknown global flag");
    } else {
      const v = draw(r, flagPools(places, "")[g] as Pool);
      globals.push(...(r.chance(0.5) ? [`--${g}`, v.value] : [`--${g}=${v.value}`]));
      if (v.cls === "bad") reasons.push(`--${g} ${JSON.stringify(v.value)} is not a usable directory`);
      // another root: only verbs that change nothing there (a container in scratch would be removed under its feet)
      readOnly = v.value !== "";
    }
  }
  const verb0 = readOnly
    ? r.pick(["ps", "inspect", "logs", "images"])
    : r.weighted([
        [6, "run"],
        [3, "exec"],
        [3, "pod"],
        [1, "ps"],
        [1, "logs"],
        [1, "stop"],
        [1, "kill"],
        [1, "rm"],
        [1, "wait"],
        [1, "inspect"],
        [1, "stats"],
        [1, "ns"],
        [1, "network"],
        [1, "rootfs"],
        [0.5, "cleanup"],
        [2.5, "image"],
        [0.5, "images"],
        [0.5, "rmi"],
        [0.5, "export"],
        [1, "pull"],
        [0.5, "login"],
        [0.5, "logout"],
      ] as const);
  // image's actions are verbs of their own ("image save"); now and then the bare verb with a bad action
  const verb = verb0 === "image" && r.chance(0.9) ? r.pick(Object.keys(IMAGE_ACTIONS)) : verb0;
  const defs = (VERBS[verb] ?? IMAGE_ACTIONS[verb]) as FlagsDef;
  const pools = flagPools(places, verb);
  const flagGroups: string[][] = [];
  const given = new Map<string, string>();
  const flagReasons = new Map<string, string[]>();
  const nFlags = r.weighted([
    [2, 0],
    [4, 1],
    [3, 2],
    [2, 3],
    [1, 5],
  ]);
  const opts = options(defs);
  for (let i = 0; i < nFlags && opts.length; i++) {
    const [name, d] = r.pick(opts);
    const short = d.alias && d.alias.length === 1 ? d.alias : undefined;
    const longAlias = d.alias && d.alias.length > 1 ? d.alias : undefined;
    const key = longAlias && r.chance(0.3) ? longAlias : name;
    if (d.type === "boolean") {
      const form = r.weighted([
        [6, "long"],
        [short ? 3 : 0, "short"],
        [1, "=true"],
        [1, "=false"],
        [1, "=bad"],
      ] as const);
      if (form === "short") flagGroups.push([`-${short}`]);
      else if (form === "long") flagGroups.push([`--${key}`]);
      else if (form === "=bad") {
        flagGroups.push([`--${key}=${r.pick(["maybe", "1", "", "yes"])}`]);
        flagReasons.set(`${name}=`, [`--${key} takes no value`]);
      } else flagGroups.push([`--${key}${form}`]);
      given.set(name, form === "=false" ? "false" : "true");
      continue;
    }
    if (d.bare !== undefined && r.chance(0.3)) {
      flagGroups.push([`--${key}`]);
      given.set(name, d.bare);
      continue;
    }
    let pool = pools[name];
    if (!pool) {
      missingPools.add(`${verb} --${name}`);
      pool = GENERIC;
    }
    let { value, cls } = draw(r, pool);
    const mutation = r.weighted([
      [17, "none"],
      [1, "control"],
      [1, "long"],
      [1, "empty"],
    ] as const);
    if (mutation === "control") {
      value = `${value}${r.pick(CONTROL_VALUES)}`;
      cls = STRICT.has(name) ? "bad" : "odd";
    } else if (mutation === "long") {
      value = `${value}${r.pick(["x".repeat(300), "y".repeat(5000), "z".repeat(100000)])}`;
      cls = STRICT.has(name) ? "bad" : "odd";
    } else if (mutation === "empty") {
      value = "";
      cls = "odd";
    }
    // a flag given again replaces its value (but the repeatable ones): only the last one counts
    if (!d.multiple) flagReasons.delete(name);
    if (cls === "bad")
      flagReasons.set(name, [...(flagReasons.get(name) ?? []), `--${name} ${JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)}`]);
    // a flag with a bare form (--userns alone is "auto") takes its value only after "=": "--userns V" makes V a positional
    const bare = d.bare !== undefined;
    const form = r.weighted([
      [bare ? 0 : 5, "space"],
      [3, "equals"],
      [short && !bare ? 3 : 0, "short"],
      [short && value !== "" && !value.startsWith("=") ? 1 : 0, "attached"],
    ] as const);
    if (form === "space") flagGroups.push([`--${key}`, value]);
    else if (form === "equals") flagGroups.push([`--${key}=${value}`]);
    else if (form === "short") flagGroups.push([`-${short}`, value]);
    else flagGroups.push([`-${short}${value}`]);
    given.set(name, value);
  }
  if (r.chance(0.08)) {
    flagGroups.splice(r.int(0, flagGroups.length), 0, [r.pick(UNKNOWN_FLAGS)]);
    reasons.push("an unknown flag");
  }

  // positionals, in their declared order
  const pos: string[] = [];
  const named = new Map<string, string[]>();
  let command: string[] = [];
  let mayBlock = false;
  let skipped = false;
  for (const [name, d] of positionals(defs)) {
    if (name === "command") {
      if (r.chance(0.05)) {
        // --entrypoint, or an image's Entrypoint and Cmd, are a command too
        if (verb !== "run" || (!given.get("entrypoint") && isPathArg(named.get("image|rootfs")?.[0] ?? "/"))) reasons.push("no command");
        continue;
      }
      // 126 and 127 (not executable, not found) are allowed exit codes anyway
      const [cmd] = r.pick(COMMANDS);
      command = [...cmd, ...(r.chance(0.2) ? [r.word(), r.pick(["-x", "--help", "\u0001", "a".repeat(3000)])] : [])];
      continue;
    }
    const give = d.required ? r.chance(0.95) : r.chance(0.4);
    if (!give) {
      skipped = true;
      if (d.required) reasons.push(`no ${name}`);
      // run without its image: then without a command too (else the command's first word would be the image, a docker.io name)
      if (NETWORK_POSITIONALS[verb] === name) break;
      continue;
    }
    const many =
      d.multiple || MULTI_REF.has(verb)
        ? r.weighted([
            [5, 1],
            [2, 2],
            [1, 3],
          ])
        : 1;
    const values: string[] = [];
    for (let i = 0; i < many; i++) {
      const v = draw(r, positionalPool(places, verb, name));
      // a reference that could leave the machine is replaced by one that cannot (it fails either way)
      if (NETWORK_POSITIONALS[verb] === name)
        v.value = safeImageRef(verb, v.value, { pullAlways: verb !== "run" || given.get("pull") === "always", stored: isStored });
      if (v.cls === "bad") reasons.push(`${name} ${JSON.stringify(v.value.slice(0, 60))}`);
      values.push(v.value);
    }
    named.set(name, values);
    pos.push(...values);
  }
  const noRest = verb !== "run" && verb !== "exec";
  // (not after a positional left out: the extra one would take its place)
  if (r.chance(0.08) && noRest && !skipped) {
    // (a verb that may reach a registry gets only extras that cannot)
    pos.push(r.pick(NETWORK_POSITIONALS[verb] ? ["127.0.0.1:1/fz/extra", "", "\u0001"] : ["extra", "0-1", "", "\u0001"]));
    // verbs with a list of references: one more (unknown) reference is an error of its own
    if (!MULTI_REF.has(verb) && verb !== "pod") reasons.push("an extra argument");
    else if (MULTI_REF.has(verb)) reasons.push("an unknown reference");
    named.set("extra", ["x"]);
  }
  // the small semantics of a few verbs
  // run without --net would get the default bridge (an image's run too: found by seed 2003874262, case 241,
  // `run --publish=8080:80 IMAGE` made nsbox0 and published a port): never the bridge, as flags.ts says
  if (verb === "run" && !given.has("net")) flagGroups.unshift(["--net", "none"]);
  if (verb === "pod") {
    const action = named.get("action")?.[0];
    // pod's flags say which actions read them ("create: ...", "ps: ...; inspect: ..."); the others ignore them
    for (const [name, d] of options(defs)) {
      const scope = [...d.description.matchAll(/(?:^|; )(\w+):/g)].map((m) => m[1] as string);
      const act = action === "ls" ? "ps" : action;
      if (scope.length && !scope.includes(act ?? "")) flagReasons.delete(name);
    }
    const refs = [...(named.get("pods") ?? []), ...(named.get("extra") ?? [])];
    if ((action === "create" || action === "ps" || action === "ls") && refs.length) reasons.push(`pod ${action} takes no argument`);
    if ((action === "inspect" || action === "stop" || action === "rm") && !refs.length) reasons.push(`pod ${action} needs a pod`);
    if (action === "create" && !given.has("net")) flagGroups.unshift(["--net", "none"]);
  }
  if (verb === "ns") {
    const c = named.get("container")?.[0];
    const dir = named.get("dir");
    if (c === "unbind" && !dir) reasons.push("ns unbind needs a directory");
    if (c !== "unbind" && dir) reasons.push("ns takes one container");
  }
  if (verb === "stats" && given.get("no-stream") !== "true") mayBlock = true;
  if (verb === "logs" && given.get("follow") === "true" && named.get("container")?.[0] === TARGET) mayBlock = true;
  if (verb === "wait" && (named.get("containers") ?? []).includes(TARGET)) mayBlock = true;

  const trailing: string[] = [];
  // a string flag left without its value, at the very end (not for run and exec: their end is the command)
  if (noRest && r.chance(0.04)) {
    const s = options(defs).filter(([, d]) => d.type === "string" && d.bare === undefined);
    if (s.length) {
      const [name] = r.pick(s);
      trailing.push(`--${name}`);
      reasons.push(`--${name} without a value`);
    }
  }
  let body: string[];
  if (noRest) {
    // flags and positionals interleaved at random, each kept in its own order (a repeated flag's last value wins)
    body = [];
    let f = 0;
    let q = 0;
    while (f < flagGroups.length || q < pos.length) {
      if (q >= pos.length || (f < flagGroups.length && r.chance(0.5))) body.push(...(flagGroups[f++] as string[]));
      else body.push(pos[q++] as string);
    }
    body.push(...trailing);
  } else body = [...flagGroups.flat(), ...pos, ...command];
  for (const rs of flagReasons.values()) reasons.push(...rs);
  if (helpWins) reasons.length = 0; // --help and --version answer before anything else is read
  const refs = [...(named.get("containers") ?? []), ...(named.get("pods") ?? []), ...(named.get("images") ?? [])].length;
  return {
    n,
    label: `case ${n} (seed stream fuzz/case${n})`,
    verb,
    verbAt: globals.length,
    argv: [...globals, ...verb.split(" "), ...body],
    reasons,
    mayBlock,
    maxErrors: Math.max(1, refs + (named.has("extra") ? 1 : 0)),
  };
}

/** Where the verb starts in a hand-made argv (after --root, --state and --debug). */
function verbOf(argv: string[]): { verb: string; verbAt: number } {
  let i = 0;
  while (argv[i] === "--root" || argv[i] === "--state" || argv[i] === "--debug") i += argv[i] === "--debug" ? 1 : 2;
  const w = argv[i] ?? "";
  return { verb: w === "image" && IMAGE_ACTIONS[`image ${argv[i + 1]}`] ? `image ${argv[i + 1]}` : w, verbAt: i };
}

/**
 * Why this command line must not run: a registry reference that could leave the
 * machine. Checked on the argv itself, whatever the generator meant (flags.ts's
 * pools and safeImageRef should make this never happen).
 */
function networkGuard(c: Case): string | undefined {
  if (!NETWORK_POSITIONALS[c.verb]) return undefined;
  const words = c.verb.split(" ");
  const defs = (VERBS[c.verb] ?? IMAGE_ACTIONS[c.verb]) as FlagsDef;
  // flags that take the next word as their value (not those with a bare form: --userns alone is "auto")
  const valued = new Set<string>();
  for (const [name, d] of options(defs)) {
    if (d.type !== "string" || d.bare !== undefined) continue;
    valued.add(`--${name}`);
    if (d.alias) valued.add(d.alias.length === 1 ? `-${d.alias}` : `--${d.alias}`);
  }
  const rest = c.argv.slice(c.verbAt + words.length);
  const pullAlways = c.verb !== "run" || rest.some((a, i) => a === "--pull=always" || (a === "--pull" && rest[i + 1] === "always"));
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    if (a === "--") {
      positional.push(...rest.slice(i + 1));
      break;
    }
    if (a.startsWith("-") && a !== "-") {
      if (valued.has(a)) i++;
      continue;
    }
    positional.push(a);
  }
  // run: the image is its first positional (the rest is the command); pull and login take one, but all are checked
  for (const v of c.verb === "run" ? positional.slice(0, 1) : positional) {
    const why = unsafeReference(c.verb, v, { pullAlways, stored: isStored });
    if (why) return why;
  }
  return undefined;
}

/** What issue 10's hostile run found, kept in the corpus whatever the generator draws. */
function corpus(): Case[] {
  const R = places.rootfs;
  const src = `${places.fix}/src`;
  const fresh = `${places.scratch}/freshroot`;
  const c = (label: string, argv: string[], reasons: string[], expectCode?: number): Case => ({
    n: -1,
    label,
    ...verbOf(argv),
    argv,
    reasons,
    expectCode,
    mayBlock: false,
    maxErrors: 1,
  });
  const env8000 = Array.from({ length: 8000 }, (_, i) => ["-e", `FZ_VAR_${i}=value_${i}`]).flat();
  return [
    // found by seed 1011872327, case 249: a path longer than PATH_MAX printed Bun's raw ENAMETOOLONG
    c("ns --bind with a path longer than PATH_MAX", ["ns", TARGET, "--bind", `${src}${"y".repeat(5000)}`], ["a path longer than PATH_MAX"]),
    // found by seed 3983900602, case 138: an empty --busybox built with /bin/busybox
    c('rootfs busybox --busybox ""', ["rootfs", "busybox", `${places.scratch}/fz-bb`, "--busybox", ""], ['invalid --busybox ""']),
    c("issue 10.2: --cpuset-cpus 0-99999999", ["run", "--net", "none", "--cpuset-cpus", "0-99999999", R, "true"], ["more CPUs than the host has"]),
    c("issue 10.2: --cpuset-cpus 0-4294967295", ["run", "--net", "none", "--cpuset-cpus", "0-4294967295", R, "true"], ["more CPUs than the host has"]),
    c("issue 10.2: --cpuset-mems 0-99999999", ["run", "--net", "none", "--cpuset-mems", "0-99999999", R, "true"], ["more memory nodes than the host has"]),
    c("issue 10.3: -v DIR:/", ["run", "--net", "none", "-v", `${src}:/`, R, "true"], ["a volume on /"]),
    c("issue 10.3: -v DIR:/proc", ["run", "--net", "none", "-v", `${src}:/proc`, R, "true"], ["a volume on /proc"]),
    c("issue 10.3: -v DIR:/sys", ["run", "--net", "none", "-v", `${src}:/sys`, R, "true"], ["a volume on /sys"]),
    c("issue 10.3: -v DIR:/dev", ["run", "--net", "none", "-v", `${src}:/dev`, R, "true"], ["a volume on /dev"]),
    c("issue 10.4: 8000 -e", ["run", "--net", "none", ...env8000, R, "true"], [], 0),
    c("issue 10.5: inspect without a container", ["inspect"], ["inspect needs a container"]),
    c("issue 10.5: pod ls with an argument", ["pod", "ls", "0-1"], ["pod ls takes no argument"]),
    c("issue 10.5: --state /dev/null ps", ["--state", "/dev/null", "ps"], ["the state root is not a directory"]),
    c("issue 10.5: --root /proc ps", ["--root", "/proc", "ps"], ["the data root is not usable"]),
    c("issue 10.5: --hostname with a control byte", ["run", "--net", "none", "--hostname", "a\u0001b", R, "true"], ["a control byte in the hostname"]),
    c("issue 10.5: --hostname with ESC", ["run", "--net", "none", "--hostname", "\u001b[31mred", R, "true"], ["ESC in the hostname"]),
    c("issue 10.5: -e key with a control byte", ["run", "--net", "none", "-e", "A\u0001=1", R, "true"], ["a control byte in an env key"]),
    c("issue 10.5: -e key with ESC", ["run", "--net", "none", "-e", "\u001b[2J=1", R, "true"], ["ESC in an env key"]),
    c("issue 10.5: --name with ESC", ["run", "--net", "none", "--name", "\u001b[31mx", R, "true"], ["ESC in a name"]),
    c("issue 10.5: an unknown container with ESC", ["rm", "\u001b[2Jx"], ["no such container"]),
    c("issue 10.5: an unknown pod with ESC", ["pod", "rm", "\u001b[2Jx"], ["no such pod"]),
    c("issue 10.7: a relative ROOTFS that does not exist", ["run", "--net", "none", "./nope-rootfs", "true"], ["no such rootfs"]),
    c("a 100 kB hostname", ["run", "--net", "none", "--hostname", "h".repeat(100000), R, "true"], ["a hostname longer than 64"]),
    c("--stop -t huge", ["stop", "-t", "99999999999999999999", "nosuch-fz"], ["a timeout out of range, or no such container"]),
    c("kill -s 65", ["kill", "-s", "65", TARGET], ["no signal 65"]),
    c("ns --bind with an empty directory", ["ns", "--bind", "", TARGET], ["--bind needs a directory (not the current one)"]),
    c("ns --bind with a file", ["ns", "--bind", `${places.fix}/file`, TARGET], ["--bind needs a directory, not a file"]),
    // issue 11: bad input to an image verb leaves the data root as it was (here: a fresh one in the working directory)
    c("issue 11: run with an invalid reference", ["--root", fresh, "run", "--net", "none", "Bad/Ref", "true"], ["an invalid reference"], 125),
    c(
      "issue 11: run --pull never of a missing image",
      ["--root", fresh, "run", "--net", "none", "--pull", "never", "127.0.0.1:1/fz/x:1", "true"],
      ["no such image"],
      125,
    ),
    c("issue 11: run of an unreachable image", ["--root", fresh, "run", "--net", "none", "127.0.0.1:1/fz/x:1", "true"], ["no registry"], 125),
    c("issue 11: pull from a closed port", ["--root", fresh, "pull", "127.0.0.1:1/fz/x:1"], ["no registry"], 125),
    c("issue 11: import of a file that is no tarball", ["--root", fresh, "image", "import", `${places.fix}/bogus.tar`], ["not an archive"], 125),
    c("issue 11: import of a directory that is no layout", ["--root", fresh, "image", "import", src], ["not an image layout"], 125),
    c("issue 11: rmi of a missing image", ["--root", fresh, "rmi", "nosuch-fz"], ["no such image"], 125),
    c("issue 11: tag of a missing image", ["--root", fresh, "image", "tag", "nosuch-fz", "127.0.0.1:1/fz/t:1"], ["no such image"], 125),
    c("issue 11: images of an empty store", ["--root", fresh, "images"], [], 0),
    c("issue 11: prune of an empty store", ["--root", fresh, "image", "prune"], [], 0),
    c("issue 11: df of an empty store", ["--root", fresh, "image", "df"], [], 0),
    c("issue 11: save without -o", ["image", "save", FZ_IMAGE], ["save needs -o"], 125),
    c("issue 11: login without credentials", ["login", "127.0.0.1:1"], ["no credentials"], 125),
    c("issue 11: login to a closed port", ["login", "-u", "fz", "-p", "pw", "127.0.0.1:1"], ["no registry"], 125),
    c("issue 11: logout when not logged in", ["logout", "127.0.0.1:1"], ["not logged in"], 125),
  ];
}

// ------------------------------------------------------------------ running a case

let ids: Ids;
let targetId = "";
let targetPid = 0;
type Baseline = { state: string[]; data: string[]; fix: string[]; scratch: string[]; mounts: string[] };
let baseline: Baseline;

const notTarget = (e: string) => !e.includes(targetId) && e !== `names/${TARGET}`;
function look(): Baseline {
  return {
    // seccomp/ is a cache of compiled filters (kept on purpose, as host.ts says)
    state: lsRecursive(ctx.stateRoot).filter((e) => notTarget(e) && e !== "names" && e !== "pods" && e !== "seccomp" && !e.startsWith("seccomp/")),
    // the cache's and the layers' own directories stay once made; what they hold counts
    data: lsRecursive(ctx.dataRoot).filter((e) => notTarget(e) && e !== "rootfs" && e !== "rootfs/by-path" && e !== "containers"),
    fix: lsRecursive(places.fix),
    scratch: lsRecursive(places.scratch),
    mounts: mountLines([ctx.tmp]),
  };
}

async function startTarget(): Promise<void> {
  const r = await ctx.nsbox([
    "run",
    "-d",
    "--net",
    "none",
    "--name",
    TARGET,
    ctx.rootfs,
    "sh",
    "-c",
    "trap 'exit 143' TERM; echo ready; sleep 600 & wait",
    "fz-target",
  ]);
  if (r.code !== 0) throw new Error(`cannot start the fuzzer's target container: ${show(["run", "-d", "..."], r)}`);
  targetId = r.stdout.trim();
  targetPid = await hostPid(ctx, targetId);
  ids.sync(targetId);
}

function targetFine(): boolean {
  return targetPid > 0 && pidAlive(targetPid) && existsSync(join(ctx.stateRoot, targetId)) && existsSync(join(ctx.stateRoot, "names", TARGET));
}

/** Empties the working directory (undoing ns --bind first). */
async function resetScratch(): Promise<void> {
  for (const e of readdirSync(places.scratch)) {
    const p = join(places.scratch, e);
    if (existsSync(join(p, ".nsbox-ns"))) await ctx.nsbox(["ns", "unbind", p]);
  }
  for (const mp of mountsBelow(places.scratch)) Bun.spawnSync(["umount", "-l", mp]);
  for (const e of readdirSync(places.scratch)) rmSync(join(places.scratch, e), { recursive: true, force: true });
}

/** Removes every container (but the target) and pod of the state root. */
async function removeMade(): Promise<void> {
  const ps = await ctx.nsbox(["ps", "-a", "-q", "--no-trunc"]);
  const others = ps.stdout.split("\n").filter((id) => id && id !== targetId);
  if (others.length) await ctx.nsbox(["rm", "-f", ...others]);
  const pods = await ctx.nsbox(["pod", "ps", "--format", "json"]);
  for (const l of pods.stdout.split("\n").filter(Boolean)) await ctx.nsbox(["pod", "rm", "-f", (JSON.parse(l) as { Id: string }).Id]);
}

function diffLists(before: string[], now: string[]): string[] {
  const b = new Set(before);
  const n = new Set(now);
  return [...now.filter((x) => !b.has(x)).map((x) => `+ ${x}`), ...before.filter((x) => !n.has(x)).map((x) => `- ${x}`)];
}

/** What the case left (or took away): state, data, fixtures, mounts, cgroups, processes. */
async function leftBehind(): Promise<string[]> {
  const now = look();
  const out: string[] = [];
  for (const k of Object.keys(now) as (keyof Baseline)[]) for (const d of diffLists(baseline[k], now[k])) out.push(`${k} ${d}`);
  const others = () => {
    const known = new Set(ids.sync());
    known.delete(targetId);
    const cg = nsboxCgroupDirs().filter((d) => known.has(d.slice(d.lastIndexOf("nsbox-") + 6)));
    const procs = suiteProcesses(ctx.tmp, known).filter((p) => !p.includes(targetId) && !p.startsWith(`${targetPid}:`));
    return [...cg.map((c) => `cgroup ${c}`), ...procs.map((p) => `process ${p}`)];
  };
  let rest = others();
  // a command that exited may leave its clean-up a moment (issue 10 point 8 is about rm): not the fuzzer's subject
  for (let i = 0; i < 30 && rest.length; i++) {
    await Bun.sleep(100);
    rest = others();
  }
  return [...out, ...rest];
}

interface Outcome {
  c: Case;
  r: RunResult;
  problems: string[];
}

const phases: Record<string, number> = {};
let phaseStart = 0;
const phase = (name: string) => {
  const now = performance.now();
  phases[name] = (phases[name] ?? 0) + (now - phaseStart);
  phaseStart = now;
};

/** The target was stopped, killed, removed or signalled by a case: a new one before a case names it. */
let targetDirty = false;

async function runCase(c: Case): Promise<Outcome> {
  phaseStart = performance.now();
  const unsafe = networkGuard(c);
  if (unsafe)
    return {
      c,
      r: { code: -1, signal: null, stdout: "", stderr: "", rawStderr: "", timedOut: false },
      problems: [`not run, it could reach the network: ${unsafe}`],
    };
  if (targetDirty && c.argv.some((a) => a.includes(TARGET))) {
    await ctx.nsbox(["rm", "-f", TARGET]);
    await startTarget();
    targetDirty = false;
    baseline = look();
  }
  phase("target");
  const r = await ctx.nsbox(c.argv, { cwd: places.scratch, timeoutMs: c.mayBlock ? 1500 : 8000 });
  const problems: string[] = [];
  if (r.timedOut && !c.mayBlock) problems.push("did not finish in 8 s");
  if (!r.timedOut) {
    if (r.signal) problems.push(`ended by ${r.signal}`);
    else if (c.expectCode !== undefined && r.code !== c.expectCode) problems.push(`exit ${r.code}, expected ${c.expectCode}`);
    else if (![0, 125, 126, 127].includes(r.code)) problems.push(`exit ${r.code}, not 0, 125, 126 or 127`);
    else if (r.code === 0 && c.reasons.length) problems.push(`exit 0, but it must be refused: ${c.reasons.join("; ")}`);
  }
  const debugLess = r.stderr
    .split("\n")
    .filter((l) => !l.startsWith("nsbox: debug: "))
    .join("\n");
  problems.push(...stderrProblems(debugLess, r.code === 0 ? Number.POSITIVE_INFINITY : c.maxErrors));
  phase("command");
  // what an accepted command made goes (containers, pods, a rootfs or ns --bind in the working directory)
  if (r.code === 0 || r.timedOut) {
    if (look().state.length > baseline.state.length) await removeMade();
    await resetScratch();
  }
  phase("removeMade");
  if (!targetDirty && (!targetFine() || (c.argv.includes("kill") && r.code === 0))) {
    // gone, or given a signal it may not die of (STOP, USR1): replaced when a case needs it
    targetDirty = true;
    await ctx.nsbox(["rm", "-f", TARGET]);
  }
  const left = await leftBehind();
  phase("leftBehind");
  if (left.length) {
    if (r.code !== 0 || r.timedOut) problems.push(`left behind: ${left.slice(0, 20).join("; ")}`);
    else problems.push(`left behind after its own clean-up: ${left.slice(0, 20).join("; ")}`);
    await removeMade();
    // processes of the suite's own roots that nsbox did not end: ended here, or every later case would be blamed
    for (const l of left) {
      const pid = /^process (\d+):/.exec(l)?.[1];
      if (pid) tryKill(Number(pid));
    }
  }
  await resetScratch();
  // a case that wrote into the fixtures (reported above) must not change what the next ones see
  if (lsRecursive(places.fix).join("\n") !== baseline.fix.join("\n")) makeFixtures();
  baseline = look();
  phase("scratch");
  return { c, r, problems };
}

/** The fixtures the pools name: src/ (a directory with a file), file, bogus.tar (not a tarball). */
function makeFixtures(): void {
  rmSync(places.fix, { recursive: true, force: true });
  mkdirSync(join(places.fix, "src"), { recursive: true });
  writeFileSync(join(places.fix, "src", "hello"), "hello\n");
  writeFileSync(join(places.fix, "file"), "a plain file\n");
  writeFileSync(join(places.fix, "bogus.tar"), "not a tarball\n");
}

/**
 * The image the image verbs name (FZ_IMAGE): busybox as one layer, imported from an
 * OCI layout, run once (its layer unpacked) and pruned once, so that the store's
 * directories and lock files exist before the first case: later cases add nothing.
 */
async function importImage(): Promise<void> {
  const layer = tarOf(ctx.rootfs, join(ctx.tmp, "fz-layer.tar"));
  writeLayout(places.layout, { layers: [{ tar: layer }] });
  const imp = await ctx.nsbox(["image", "import", "-q", places.layout, FZ_IMAGE]);
  if (imp.code !== 0) throw new Error(`cannot import the fuzzer's image: ${show(["image", "import"], imp)}`);
  places.imageId = imp.stdout.trim();
  for (const argv of [
    ["run", "--net", "none", FZ_IMAGE, "true"],
    ["image", "prune"],
  ]) {
    const r = await ctx.nsbox(argv);
    if (r.code !== 0) throw new Error(`cannot prepare the fuzzer's image: ${show(argv, r)}`);
  }
}

beforeAll(async () => {
  mkdirSync(places.scratch, { recursive: true });
  makeFixtures();
  ids = new Ids(ctx);
  await importImage();
  await startTarget();
  baseline = look();
});

// before useNsbox removes the roots and prunes the bridge (a plain afterAll would run after that)
ctx.beforeCleanup(async () => {
  await removeMade();
  await ctx.nsbox(["rm", "-f", TARGET]);
  ids?.close();
  if (places.cgroupParent) await removeOwnCgroups(cgroupDirsOf(places.cgroupParent));
});

test("the fuzzer's flag table has every verb of nsbox --help, and a value pool for every flag", async () => {
  const help = await ctx.nsbox(["--help"]);
  const verbs = /USAGE nsbox \[OPTIONS\] (\S+)/.exec(help.stdout)?.[1]?.split("|") ?? [];
  expect(verbs.length).toBeGreaterThan(5);
  expect(verbs.filter((v) => !VERBS[v])).toEqual([]);
  const unpooled: string[] = [];
  for (const [verb, defs] of [...Object.entries(VERBS), ...Object.entries(IMAGE_ACTIONS)]) {
    const pools = flagPools(places, verb);
    for (const [name, d] of options(defs)) if (d.type === "string" && !pools[name]) unpooled.push(`${verb} --${name}`);
  }
  expect(unpooled).toEqual([]);
});

test("the fuzzer's network safety: docker.io names go to NSBOX_REGISTRY_MIRROR, and the guard refuses any other registry", async () => {
  const fresh = join(places.scratch, "mirror-root");
  try {
    // in a network namespace of its own (only a loopback, down): even if the mirror were ignored, nothing leaves
    for (const argv of [
      ["pull", "fz-mirror-check"],
      ["run", "--net", "none", "fz-mirror-check", "true"],
    ]) {
      const r = await ctx.nsbox(["--root", fresh, ...argv], { prefix: ["unshare", "-n"], timeoutMs: 20000 });
      expect({ argv, code: r.code, stderr: r.stderr }).toEqual({ argv, code: 125, stderr: expect.stringContaining("registry 127.0.0.1:1") });
    }
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
  const opts = { pullAlways: true, stored: () => false };
  for (const [verb, v] of [
    ["run", "alpine"],
    ["pull", "user/x:1"],
    ["image pull", "docker.io/library/x"],
    ["pull", "registry.example.com/x:1"],
    ["login", "docker.io"],
    ["login", "https://index.docker.io/v1/"],
  ])
    expect({ verb, v, unsafe: unsafeReference(verb as string, v as string, opts) !== undefined }).toEqual({ verb, v, unsafe: true });
  for (const [verb, v] of [
    ["run", FZ_IMAGE],
    ["run", ctx.rootfs],
    ["pull", "Bad/Ref"],
    ["pull", "localhost:1/x"],
    ["login", "127.0.0.1:1"],
  ])
    expect({ verb, v, unsafe: unsafeReference(verb as string, v as string, opts) !== undefined }).toEqual({ verb, v, unsafe: false });
}, 60000);

test(`${CASES} generated command lines and the corpus of issue 10: exit 125/126/127 (or 0), one clean line on stderr, nothing left behind`, async () => {
  const started = Date.now();
  const cases = [...corpus().map((c, i) => ({ ...c, n: 10000 + i })), ...Array.from({ length: CASES }, (_, n) => generate(n, rng.fork(`case${n}`)))];
  const chosen = ONLY === undefined ? cases : cases.filter((c) => c.n === ONLY);
  const failed: Outcome[] = [];
  const codes: Record<string, number> = {};
  for (const c of chosen) {
    const o = await runCase(c);
    codes[o.r.timedOut ? "blocked" : String(o.r.code)] = (codes[o.r.timedOut ? "blocked" : String(o.r.code)] ?? 0) + 1;
    if (o.problems.length) failed.push(o);
  }
  const seed = process.env.NSBOX_CHAOS_SEED;
  const report = failed.map(
    (o) =>
      `${o.c.label}: ${o.problems.join("; ")}\n    ${show(o.c.argv, o.r)}\n    replay: NSBOX_CHAOS_SEED=${seed} NSBOX_CHAOS_CASE=${o.c.n} ${"bun test test/chaos/fuzz.test.ts"}`,
  );
  console.log(
    `fuzz: ${chosen.length} command lines, exit codes ${JSON.stringify(codes)}, ${failed.length} failed, in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  console.log(`fuzz: time per phase (ms): ${JSON.stringify(Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v)])))}`);
  if (missingPools.size) console.log(`fuzz: flags without a value pool (generic values used): ${[...missingPools].join(", ")}`);
  if (report.length) console.log(report.join("\n"));
  expect(report).toEqual([]);
}, 600000);
