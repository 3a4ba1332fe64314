/**
 * The fuzzer's view of nsbox's command line: the real flag table (the FlagsDef
 * objects that src/main.ts hands to citty and to parseFlags), and for each flag
 * and positional a pool of values: "ok" ones nsbox should accept, "bad" ones it
 * must refuse (exit 125/126/127), and "odd" ones where either is fine as long as
 * it says so in one clean line. A new verb or flag shows up here by itself; one
 * without a pool gets the generic values (and the test says which are missing).
 *
 * Safety: every value the fuzzer can produce is harmless to the host when nsbox
 * accepts it. Containers never get the bridge (--net is none or host, forced if
 * absent: a fuzzed --subnet must never create nsbox0 with a strange range), host
 * paths are inside the suite's directory, --cgroup-parent is a fresh level below
 * the test's own cgroup (or invalid), and the commands run in containers exit at once.
 */
import type { FlagDef, FlagsDef } from "../../src/cli/args.ts";
import { cleanupFlags } from "../../src/cli/cleanup.ts";
import { execFlags } from "../../src/cli/exec.ts";
import { inspectFlags } from "../../src/cli/inspect.ts";
import { logsFlags } from "../../src/cli/logs.ts";
import { networkFlags } from "../../src/cli/network.ts";
import { nsFlags } from "../../src/cli/ns.ts";
import { podFlags } from "../../src/cli/pod.ts";
import { psFlags } from "../../src/cli/ps.ts";
import { rootfsFlags } from "../../src/cli/rootfs.ts";
import { runFlags } from "../../src/cli/run.ts";
import { statsFlags } from "../../src/cli/stats.ts";
import { killFlags, rmFlags, stopFlags, waitFlags } from "../../src/cli/stop.ts";
import type { Rng } from "./rng.ts";

/** Every verb of src/main.ts's table (cleanup is hidden from --help, but a verb all the same). */
export const VERBS: Record<string, FlagsDef> = {
  run: runFlags,
  ps: psFlags,
  logs: logsFlags,
  exec: execFlags,
  stop: stopFlags,
  kill: killFlags,
  rm: rmFlags,
  wait: waitFlags,
  inspect: inspectFlags,
  stats: statsFlags,
  ns: nsFlags,
  pod: podFlags,
  network: networkFlags,
  rootfs: rootfsFlags,
  cleanup: cleanupFlags,
};

/** Verbs that take several references and print one error line per bad one. */
export const MULTI_REF = new Set(["stop", "kill", "rm", "wait", "inspect", "stats"]);

export interface Pool {
  ok: string[];
  bad: string[];
  odd?: string[];
}

/** Paths the pools need (all inside the suite's temporary directory, but the rootfs's). */
export interface Places {
  tmp: string;
  rootfs: string;
  /** the fuzzer's working directory: relative paths land here; emptied after every case */
  scratch: string;
  /** fixtures: src/ (a directory with a file), file (a plain file), bogus.tar (not a tarball) */
  fix: string;
  /** a --cgroup-parent below the test's own cgroups, or undefined when there is none */
  cgroupParent: string | undefined;
  /** the running container the reference-taking verbs may hit */
  target: string;
}

const HEX64 = "f".repeat(63) + "0";
export const CONTROL_VALUES = ["a\u0001b", "a\nb", "\u001b[31mred\u001b[0m", "tab\there", "del\u007f", "c1\u009bx", "cr\rx", "\u0007bell"];
const NUMBERS_BAD = ["-1", "-99999999", "abc", "99999999999999999999", "1e309", "0x10", "NaN", "Infinity", "1.5.2", " 5", "-0x1"];

/** Values per flag name (the same name means the same thing in every verb). */
export function flagPools(p: Places, verb: string): Record<string, Pool> {
  const src = `${p.fix}/src`;
  const pools: Record<string, Pool> = {
    // global flags: only read-only verbs run with another root (see the generator)
    root: { ok: [`${p.scratch}/freshroot`], bad: ["/dev/null", "/proc", `${p.fix}/file`], odd: [""] },
    state: { ok: [`${p.scratch}/freshstate`], bad: ["/dev/null", "/proc", `${p.fix}/file`], odd: [""] },
    hostname: { ok: ["fz-host", "a".repeat(63)], bad: [...CONTROL_VALUES, "a b", "-x", "a".repeat(300), "a/b"], odd: ["", "ü"] },
    name: { ok: ["fz-n1", "a".repeat(60)], bad: [...CONTROL_VALUES, "", "-x", "a b", "a".repeat(300), "../x", "a/b", "ü"] },
    env: { ok: ["A=1", `FZ_X=${"v".repeat(1000)}`, "FZ_EMPTY=", "HOME"], bad: ["=1", "A\u0001=1", "\u001b[31m=1", "A\nB=1"], odd: ["", "A B=1", "A=\u0001"] },
    workdir: { ok: ["/", "/tmp/fz", "/fz/deep/dir"], bad: ["relative", "../x"], odd: ["", "/proc/fz", `/${"x".repeat(5000)}`, "/a\u0001b"] },
    user: {
      ok: ["0", "0:0", "1000", "1000:1000", "root", "nobody"],
      bad: ["-1", "nosuchuser", "0:-1", "a:b:c", "4294967296", "0:nosuchgroup"],
      odd: ["", "4294967295", "0:"],
    },
    volume: {
      ok: [`${src}:/mnt`, `${src}:/mnt:ro`, `${p.fix}/file:/etc/fzfile`],
      bad: [
        `${src}:/`,
        `${src}:/proc`,
        `${src}:/sys`,
        `${src}:/dev`,
        `${src}:relative`,
        `${p.tmp}/nonexistent:/mnt`,
        `${src}:/mnt:bogus`,
        src,
        ":/mnt",
        "",
        `${src}:/mnt:ro:extra`,
        "src:/mnt",
      ],
      odd: [`${src}:/proc/fz`, `${src}:/dev/fz`, `${src}:/sys/fz`, `${src}:/mnt\u0001`],
    },
    tmpfs: {
      ok: ["/tmp", "/fz:size=1m", "/fz:mode=1777"],
      bad: ["relative", "/fz:size=-1", "/fz:size=abc", "/fz:mode=99999", "/fz:bogus=1", "", "/fz:size=99999999999999999999"],
      odd: ["/", "/proc", "/dev", "/fz:size=0"],
    },
    "log-opt": { ok: ["max-size=10m", "max-size=4k"], bad: ["max-size=1", "max-size=", "max-size=-1", "bogus=1", "", "max-size=99999999999999999999"] },
    memory: { ok: ["64m", "1g", "6m"], bad: ["abc", "-1", "0", "1", "99999999999999999999", "1e309", "64q", "0x10", "NaN"], odd: ["", "8589934592000"] },
    "memory-swap": { ok: ["-1", "128m"], bad: ["abc", "-2", "99999999999999999999"], odd: ["0"] },
    "memory-reservation": { ok: ["32m"], bad: ["abc", "-1", "99999999999999999999"] },
    cpus: { ok: ["0.5", "1", "2"], bad: ["-1", "0", "abc", "1e309", "99999999999", "NaN", "Infinity"], odd: ["0.001", "1024"] },
    "cpu-shares": { ok: ["2", "1024", "262144"], bad: ["1", "0", "-1", "262145", "abc", "99999999999999999999"] },
    "cpu-weight": { ok: ["1", "100", "10000"], bad: ["0", "10001", "-1", "abc"] },
    "pids-limit": { ok: ["1", "64"], bad: ["-2", "abc", "99999999999999999999", "1.5"], odd: ["0", "-1"] },
    "cpuset-cpus": { ok: ["0", "0-1", "0,1"], bad: ["0-99999999", "0-4294967295", "1-0", "a", "-1", "0--1", "999", "0-1,", ","] },
    "cpuset-mems": { ok: ["0"], bad: ["0-99999999", "4096", "a", "-1"] },
    "blkio-weight": { ok: ["10", "1000"], bad: ["9", "1001", "-1", "abc"] },
    "device-read-bps": {
      ok: [],
      bad: ["/dev/nope:1mb", ":1mb", "x", "/dev/null:-1", "/dev/null:abc", "/dev/null:99999999999999999999"],
      odd: ["/dev/null:1mb"],
    },
    "device-write-bps": { ok: [], bad: ["/dev/nope:1mb", ":1mb", "x", "/dev/null:-1", "/dev/null:abc"], odd: ["/dev/null:1mb"] },
    "cgroup-parent": {
      ok: p.cgroupParent ? [p.cgroupParent] : [],
      bad: ["../x", "a/../b", "a b", "/proc/x", "/sys/x", "a\u0001", ...(p.cgroupParent ? [`${p.cgroupParent}/${"a".repeat(300)}`] : [])],
    },
    cgroupns: { ok: ["private", "host"], bad: ["", "x", "PRIVATE"] },
    "cgroup-manager": { ok: ["cgroupfs", "none"], bad: ["", "systemd"] },
    // never the bridge: see the file's comment
    net:
      verb === "pod"
        ? { ok: ["none", "host"], bad: ["", "container:x", "bogus", "\u0001"] }
        : { ok: ["none", "host"], bad: ["", "bridgeX", "container:", "container:nosuch-fz", "\u0001"], odd: [`container:${p.target}`] },
    publish: { ok: [], bad: ["8080:80", "0:80", "65536:80", "-1:80", "1:1/sctp", "127.0.0.1:8080:80", "a:b", "", "99999999999:80"] },
    subnet: { ok: ["10.99.0.0/16"], bad: ["0.0.0.0/33", "300.1.1.1/8", "abc", "", "10.0.0.1"], odd: ["0.0.0.0/0", "10.0.0.0/31"] },
    pod: { ok: [], bad: ["nopod-fz", "", "\u0001"] },
    userns: { ok: ["auto", "100000:65536", "host"], bad: ["0:1", "1:0", "4294967295:2", "a:b", "-1:5", "99999999999999999999:1"], odd: [""] },
    tail: { ok: ["0", "5", "all"], bad: ["-1", "abc", "1.5"], odd: ["99999999999999999999"] },
    time: { ok: ["0", "1", "10"], bad: ["-1", "abc", "1.5", "99999999999999999999"], odd: ["4294967296"] },
    signal: {
      ok: ["KILL", "TERM", "9", "SIGTERM", "HUP", "USR1"],
      bad: ["abc", "-1", "65", "999", "", "SIGNOPE"],
      odd: ["0", "64", "STOP", "CONT", "sigterm"],
    },
    format:
      verb === "inspect" || verb === "pod"
        ? { ok: ["json", "{{.Id}}", "{{json .State}}", "xml"], bad: [], odd: ["", "{{", "{{.Nope}}", "{{range}}", "\u0001"] }
        : { ok: ["json", "table"], bad: ["xml", "{{.Nope}}"], odd: ["", "{{json .}}", "\u0001"] },
    filter: {
      ok: ["status=running", "exited=0", "name=fz", "id=0", "pod=x"],
      bad: ["status=bogus", "exited=-1", "=x", "nope=1", "", "exited=abc"],
      odd: ["id=\u0001"],
    },
    share: { ok: ["net", "net,pid", "net,ipc,uts"], bad: ["pid", "bogus", "", "net,bogus"] },
    bind: { ok: [`${p.scratch}/fzbind`], bad: ["", `${p.fix}/file`, src], odd: [] },
    busybox: { ok: ["/bin/busybox"], bad: [`${p.fix}/nope`, "", "/dev/null"], odd: ["/bin/sh"] },
  };
  return pools;
}

/** Values of positionals, per verb and positional name ("command" is the container's command, chosen apart). */
export function positionalPool(p: Places, verb: string, name: string): Pool {
  const ref: Pool = { ok: [p.target], bad: ["nosuch-fz", "", "\u0001x", "x".repeat(5000), "..", "../data", HEX64], odd: [`${p.target}\u001b[0m`] };
  switch (`${verb}.${name}`) {
    case "run.rootfs":
      return { ok: [p.rootfs], bad: ["", `${p.fix}/nope`, "./nope-rel", "/dev/null", `${p.fix}/file`, `${p.fix}/bogus.tar`] };
    case "ns.container":
      return { ok: [p.target], bad: ref.bad, odd: [...(ref.odd ?? []), "unbind"] };
    case "ns.dir":
      return { ok: [], bad: ["", `${p.scratch}/nomarker`, `${p.fix}/src`] };
    case "pod.action":
      return { ok: ["create", "ps", "ls"], bad: ["bogus", "", "LS"], odd: ["inspect", "stop", "rm"] };
    case "pod.pods":
      return { ok: [], bad: ["nopod-fz", "", "\u0001", "x".repeat(5000)] };
    case "network.action":
      return { ok: ["ls", "inspect", "prune"], bad: ["bogus", "", "LS"] };
    case "rootfs.kind":
      return { ok: ["busybox"], bad: ["bogus", ""] };
    case "rootfs.dir":
      return { ok: ["fzroot", `${p.scratch}/fzroot2`], bad: ["", "/dev/null", `${p.fix}/file`, `${p.fix}/src`] };
    case "cleanup.id":
      // a container that is already gone is fine to clean up again (exit 0)
      return { ok: [HEX64], bad: [], odd: ["", "..", "nope", "\u0001"] };
    default:
      return ref;
  }
}

/** Commands for run and exec, with the exit code each one ends with. */
export const COMMANDS: [string[], number][] = [
  [["true"], 0],
  [["echo", "fz"], 0],
  [["/bin/true"], 0],
  [["sh", "-c", "exit 0"], 0],
  [["fz-nope-cmd"], 127],
  [["/etc"], 126],
];

/** Flags no verb has. */
export const UNKNOWN_FLAGS = ["--nope", "-Z", "---x", "--=x", "--hostname-x", "--\u0001"];

export const positionals = (defs: FlagsDef): [string, FlagDef][] => Object.entries(defs).filter(([, d]) => d.type === "positional");
export const options = (defs: FlagsDef): [string, FlagDef][] => Object.entries(defs).filter(([, d]) => d.type !== "positional");

/** A value from a pool: its class decides what the case expects. */
export function draw(r: Rng, pool: Pool): { value: string; cls: "ok" | "bad" | "odd" } {
  const classes: ["ok" | "bad" | "odd", string[]][] = (
    [
      ["ok", pool.ok],
      ["bad", pool.bad],
      ["odd", pool.odd ?? []],
    ] as ["ok" | "bad" | "odd", string[]][]
  ).filter(([, v]) => v.length);
  const [cls, values] = r.weighted(classes.map((c) => [c[0] === "ok" ? 4 : 3, c] as const));
  return { value: r.pick(values), cls };
}

export const NUMBERS = NUMBERS_BAD;
