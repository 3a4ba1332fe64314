/**
 * Helpers for the network and pod integration tests (test/integration/net-*,
 * pod-*): what nsbox holds on the host for a container (its veth, its address
 * and ports in the shared network state, its nft rules), host sysctls recorded
 * and restored, a client network namespace made by the test, free ports, a tiny
 * static tool (UDP echo, SysV shared memory) compiled once per file, and
 * namespace inodes / memory of processes.
 *
 * Traffic rule: everything here talks only to namespaces the tests create
 * (containers, the client namespace below, nsbox's own bridge) or to 127.0.0.1.
 */

import { beforeAll } from "bun:test";
import { copyFileSync, existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NsboxContext, RunOptions, RunResult } from "./nsbox.ts";
import { addedSince } from "./nsbox.ts";

// ---------------------------------------------------------------- processes

export interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion (never throws on a non-zero exit); killed after timeoutMs. */
export function sh(argv: string[], opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Out {
  const r = Bun.spawnSync(argv, {
    stdin: opts.input === undefined ? "ignore" : new TextEncoder().encode(opts.input),
    stdout: "pipe",
    stderr: "pipe",
    timeout: opts.timeoutMs ?? 20000,
    env: opts.env,
  });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Like sh, but a non-zero exit throws with the command and its stderr. */
export function mustSh(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  const r = sh(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** Calls fn until it returns a truthy value or timeoutMs passes (every intervalMs); returns the last value. */
export async function retry<T>(fn: () => T | Promise<T>, timeoutMs = 8000, intervalMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > end) return v;
    await Bun.sleep(intervalMs);
  }
}

// ---------------------------------------------------------------- nsbox's network state

/** Where nsbox keeps the bridge's allocations (NSBOX_NET_STATE moves it). */
export const netStateDir = (env: Record<string, string | undefined> = process.env): string => env.NSBOX_NET_STATE || "/run/nsbox/net";

export interface NetState {
  subnet?: string;
  addresses: Record<string, string>;
  ports: Record<string, string>;
  owners: Record<string, string>;
  sysctls?: Record<string, string>;
}

export function readNetState(dir = netStateDir()): NetState {
  try {
    const s = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as Partial<NetState>;
    return { ...s, addresses: s.addresses ?? {}, ports: s.ports ?? {}, owners: s.owners ?? {} };
  } catch {
    return { addresses: {}, ports: {}, owners: {} };
  }
}

/** A command prefix that runs in the network namespace at nsPath ([] for the test's own). */
export const inNetns = (nsPath?: string): string[] => (nsPath ? ["nsenter", `--net=${nsPath}`, "--"] : []);

export interface NftRule {
  chain: string;
  handle: number;
  comment?: string;
  /** the rule's expression as nft prints it (only what the tests look at: dport, dnat target) */
  dport?: number;
  dnat?: string;
}

/** The rules of nsbox's nft table `ip nsbox` ([] when it does not exist). */
export function nsboxRules(nsPath?: string): NftRule[] {
  const r = sh([...inNetns(nsPath), "nft", "-j", "list", "table", "ip", "nsbox"]);
  if (r.code !== 0) return [];
  type Expr = { match?: { right?: unknown; left?: { payload?: { field?: string } } }; dnat?: { addr?: string; port?: number } };
  const j = JSON.parse(r.stdout) as { nftables?: { rule?: { chain: string; handle: number; comment?: string; expr?: Expr[] } }[] };
  return (j.nftables ?? [])
    .filter((x) => x.rule)
    .map((x) => {
      const rule = x.rule as { chain: string; handle: number; comment?: string; expr?: Expr[] };
      const dport = rule.expr?.find((e) => e.match?.left?.payload?.field === "dport")?.match?.right;
      const dnat = rule.expr?.find((e) => e.dnat)?.dnat;
      return {
        chain: rule.chain,
        handle: rule.handle,
        comment: rule.comment,
        dport: typeof dport === "number" ? dport : undefined,
        dnat: dnat ? `${dnat.addr}:${dnat.port}` : undefined,
      };
    });
}

export function nsboxTableExists(nsPath?: string): boolean {
  return sh([...inNetns(nsPath), "nft", "list", "table", "ip", "nsbox"]).code === 0;
}

/** Host veth name nsbox gives a bridge container. */
export const vethName = (id: string): string => `nsb${id.slice(0, 12)}`;

/** Network interfaces of a namespace (of the test's own by default). */
export function links(nsPath?: string): string[] {
  if (!nsPath) return readdirSync("/sys/class/net").sort();
  const r = sh([...inNetns(nsPath), "ip", "-o", "link", "show"]);
  return r.stdout
    .split("\n")
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => !!n)
    .sort();
}

/** What nsbox still holds for each of these containers: veth, addresses, ports, rules, state dir. Empty lists: nothing. */
export interface Held {
  veths: string[];
  addresses: string[];
  ports: string[];
  rules: string[];
  stateDirs: string[];
}

export function heldBy(ids: string[], stateRoot: string, opts: { nsPath?: string; netState?: string } = {}): Held {
  const s = readNetState(opts.netState);
  const set = new Set(ids);
  const ls = links(opts.nsPath);
  const rules = nsboxRules(opts.nsPath);
  return {
    veths: ids.map(vethName).filter((v) => ls.includes(v)),
    addresses: Object.entries(s.addresses)
      .filter(([, id]) => set.has(id))
      .map(([ip, id]) => `${ip} (${id.slice(0, 12)})`),
    ports: Object.entries(s.ports)
      .filter(([, id]) => set.has(id))
      .map(([k, id]) => `${k} (${id.slice(0, 12)})`),
    rules: rules.filter((r) => r.comment && set.has(r.comment.replace(/^nsbox:/, ""))).map((r) => `${r.chain} #${r.handle} ${r.comment}`),
    stateDirs: ids.filter((id) => existsSync(join(stateRoot, id))).map((id) => id.slice(0, 12)),
  };
}

export const NOTHING_HELD: Held = { veths: [], addresses: [], ports: [], rules: [], stateDirs: [] };

/**
 * What a test's nsbox commands could leave without the test knowing the
 * container's id: reservations owned by the test's state root, container state
 * dirs, and veths / rules of ids that the network state does not know (orphans).
 */
export type NetSnapshot = {
  owned: string[];
  stateDirs: string[];
  orphanVeths: string[];
  orphanRules: string[];
};

export function netSnapshot(stateRoot: string, opts: { nsPath?: string; netState?: string } = {}): NetSnapshot {
  const s = readNetState(opts.netState);
  const known = new Set([...Object.values(s.addresses), ...Object.values(s.ports)]);
  const short = new Set([...known].map((id) => id.slice(0, 12)));
  const ours = (id: string) => s.owners[id] === stateRoot;
  let dirs: string[] = [];
  try {
    dirs = readdirSync(stateRoot).filter((e) => /^[0-9a-f]{64}$/.test(e));
  } catch {
    // no state root yet
  }
  return {
    owned: [
      ...Object.entries(s.addresses)
        .filter(([, id]) => ours(id))
        .map(([ip, id]) => `address ${ip} (${id.slice(0, 12)})`),
      ...Object.entries(s.ports)
        .filter(([, id]) => ours(id))
        .map(([k, id]) => `port ${k} (${id.slice(0, 12)})`),
    ].sort(),
    stateDirs: dirs.sort(),
    orphanVeths: links(opts.nsPath).filter((n) => /^nsb[0-9a-f]{12}$/.test(n) && !short.has(n.slice(3))),
    orphanRules: nsboxRules(opts.nsPath)
      .filter((r) => r.comment && /^nsbox:[0-9a-f]{64}$/.test(r.comment) && !known.has(r.comment.slice(6)))
      .map((r) => `${r.chain} ${r.comment}`)
      .sort(),
  };
}

/** What appeared since `before` (after a few polls, so a concurrent nsbox of someone else settles). */
export async function netAdded(before: NetSnapshot, now: () => NetSnapshot, settleMs = 1500): Promise<Partial<NetSnapshot>> {
  return addedSince(before, now, settleMs);
}

// ---------------------------------------------------------------- sysctls

const sysctlFile = (name: string) => `/proc/sys/${name.replace(/\./g, "/")}`;

/** A sysctl of the test's network namespace, or of the one at nsPath; undefined when it does not exist. */
export function readSysctl(name: string, nsPath?: string): string | undefined {
  if (!nsPath) {
    try {
      return readFileSync(sysctlFile(name), "utf8").trim();
    } catch {
      return undefined;
    }
  }
  const r = sh([...inNetns(nsPath), "cat", sysctlFile(name)]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** The host sysctls that nsbox's bridge (or a test) may change. */
export const NET_SYSCTLS = [
  "net.ipv4.ip_forward",
  "net.ipv4.conf.all.forwarding",
  "net.ipv4.conf.all.route_localnet",
  "net.ipv4.conf.default.route_localnet",
  "net.ipv4.conf.nsbox0.route_localnet",
  "net.ipv4.conf.lo.route_localnet",
];

/** Records sysctls now; restore() writes back every one that changed (and still exists) and says which. */
export class SysctlGuard {
  readonly before: Map<string, string | undefined>;
  constructor(readonly names: string[] = NET_SYSCTLS) {
    this.before = new Map(names.map((n) => [n, readSysctl(n)]));
  }
  changed(): string[] {
    return this.names.filter((n) => this.before.get(n) !== undefined && readSysctl(n) !== undefined && readSysctl(n) !== this.before.get(n));
  }
  restore(): string[] {
    const out: string[] = [];
    for (const n of this.changed()) {
      const was = this.before.get(n) as string;
      const now = readSysctl(n);
      try {
        writeFileSync(sysctlFile(n), was);
        out.push(`${n}: ${now} -> ${was}`);
      } catch (e) {
        out.push(`${n}: cannot restore ${was} (${(e as Error).message})`);
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------- ports

function portsInUse(): Set<string> {
  const out = new Set<string>();
  for (const proto of ["tcp", "udp"]) {
    for (const f of [`/proc/net/${proto}`, `/proc/net/${proto}6`]) {
      let text = "";
      try {
        text = readFileSync(f, "utf8");
      } catch {
        continue;
      }
      for (const line of text.split("\n").slice(1)) {
        const local = line.trim().split(/\s+/)[1];
        const hex = local?.split(":").pop();
        if (hex) out.add(`${proto}/${Number.parseInt(hex, 16)}`);
      }
    }
  }
  for (const k of Object.keys(readNetState().ports)) {
    const [proto, , port] = k.split("/");
    out.add(`${proto}/${port}`);
  }
  for (const r of nsboxRules()) if (r.dport) out.add(`tcp/${r.dport}`).add(`udp/${r.dport}`);
  return out;
}

const handedOut = new Set<number>();

/** A port (20000-44999) that nothing on the host uses, for tcp and udp alike, and not handed out before in this process. */
export function freePort(): number {
  const used = portsInUse();
  for (let i = 0; i < 1000; i++) {
    const p = 20000 + Math.floor(Math.random() * 25000);
    if (!handedOut.has(p) && !used.has(`tcp/${p}`) && !used.has(`udp/${p}`)) {
      handedOut.add(p);
      return p;
    }
  }
  throw new Error("no free port found");
}

// ---------------------------------------------------------------- a client namespace

let clients = 0;

/** /30 blocks of 192.168.250.0/24 that no address or route of the host touches; the first one. */
function pickClientSubnet(): { host: string; client: string } {
  const taken = `${sh(["ip", "-4", "-o", "addr", "show"]).stdout}\n${sh(["ip", "-4", "route", "show", "table", "all"]).stdout}`;
  // anything already in 192.168.250.x (addresses, routes, a covering 192.168.0.0/16 route) rules the block out
  if (/\b192\.168\.0\.0\/16\b|\b192\.168\.250\.0\/2[4-9]\b/.test(taken)) throw new Error("192.168.250.0/24 is in use on this host: pick another test subnet");
  const used = new Set([...taken.matchAll(/\b192\.168\.250\.(\d+)/g)].map((m) => Math.floor(Number(m[1]) / 4)));
  for (let b = 60; b < 64; b++) {
    if (!used.has(b)) return { host: `192.168.250.${b * 4 + 1}`, client: `192.168.250.${b * 4 + 2}` };
  }
  throw new Error("no free /30 left in 192.168.250.240/28");
}

/**
 * A network namespace of the test's own, joined to the host by a veth pair with
 * a private /30: the "outside client" of published ports. It reaches the host
 * at `hostIp` (the host end of the veth) and nothing else.
 */
export class ClientNs {
  readonly name: string;
  readonly hostVeth: string;
  readonly hostIp: string;
  readonly clientIp: string;

  private constructor() {
    clients += 1;
    const tag = `${process.pid.toString(36)}${clients}`.slice(-6);
    this.name = `nsbox-test-client-${tag}`;
    this.hostVeth = `nbtc${tag}`;
    const s = pickClientSubnet();
    this.hostIp = s.host;
    this.clientIp = s.client;
  }

  get path(): string {
    return `/run/netns/${this.name}`;
  }

  static create(): ClientNs {
    const c = new ClientNs();
    try {
      mustSh(["ip", "netns", "add", c.name]);
      mustSh(["ip", "link", "add", c.hostVeth, "type", "veth", "peer", "name", "eth0", "netns", c.name]);
      mustSh(["ip", "addr", "add", `${c.hostIp}/30`, "dev", c.hostVeth]);
      mustSh(["ip", "link", "set", c.hostVeth, "up"]);
      mustSh(["ip", "-n", c.name, "link", "set", "lo", "up"]);
      mustSh(["ip", "-n", c.name, "addr", "add", `${c.clientIp}/30`, "dev", "eth0"]);
      mustSh(["ip", "-n", c.name, "link", "set", "eth0", "up"]);
      // only the host end is reachable: a route to it, no default route anywhere else
      mustSh(["ip", "-n", c.name, "route", "add", `${c.hostIp}/32`, "dev", "eth0"]);
    } catch (e) {
      c.destroy();
      throw e;
    }
    return c;
  }

  /** Runs argv inside the namespace (nsenter: only the network namespace changes). */
  exec(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Out {
    return sh([...inNetns(this.path), ...argv], opts);
  }

  destroy(): void {
    sh(["ip", "link", "del", this.hostVeth]);
    sh(["ip", "netns", "del", this.name]);
  }
}

/** A private network namespace made by the test (`ip netns add`), to run nsbox in as if it were a host of its own. */
export class SandboxNs {
  readonly name: string;
  constructor(tag: string) {
    this.name = `nsbox-test-${tag}-${process.pid.toString(36)}`;
    mustSh(["ip", "netns", "add", this.name]);
    mustSh(["ip", "-n", this.name, "link", "set", "lo", "up"]);
  }
  get path(): string {
    return `/run/netns/${this.name}`;
  }
  get prefix(): string[] {
    return inNetns(this.path);
  }
  exec(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Out {
    return sh([...this.prefix, ...argv], opts);
  }
  destroy(): void {
    sh(["ip", "netns", "del", this.name]);
  }
}

// ---------------------------------------------------------------- a static tool for the containers

const TOOL_C = String.raw`
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <unistd.h>

static int usage(void) {
  fputs("usage: nbxtool udp-echo PORT | udp-send IP PORT MSG | shm-put KEY TEXT | shm-get KEY\n", stderr);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  const char *cmd = argv[1];
  if (!strcmp(cmd, "udp-echo")) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("udp-echo: bind"); return 1; }
    printf("udp-echo listening on %s\n", argv[2]);
    fflush(stdout);
    for (;;) {
      char buf[2048], out[2100];
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
      if (n < 0) { if (errno == EINTR) continue; perror("udp-echo: recvfrom"); return 1; }
      int m = snprintf(out, sizeof out, "echo:%.*s", (int)n, buf);
      sendto(s, out, m, 0, (struct sockaddr *)&from, fl);
    }
  }
  if (!strcmp(cmd, "udp-send") && argc == 5) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) { fputs("udp-send: not an IPv4 address\n", stderr); return 2; }
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("udp-send: connect"); return 1; }
    for (int i = 0; i < 10; i++) {
      send(s, argv[4], strlen(argv[4]), 0);
      struct pollfd p = { s, POLLIN, 0 };
      if (poll(&p, 1, 300) > 0) {
        char buf[2048];
        ssize_t n = recv(s, buf, sizeof buf, 0);
        if (n >= 0) { fwrite(buf, 1, n, stdout); putchar('\n'); return 0; }
        /* ECONNREFUSED: nothing listens (yet); try again */
        usleep(100000);
      }
    }
    fputs("udp-send: no reply\n", stderr);
    return 1;
  }
  if (!strcmp(cmd, "shm-put") && argc == 4) {
    int id = shmget((key_t)strtol(argv[2], 0, 0), 4096, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0) { perror("shm-put: shmget"); return 1; }
    char *p = shmat(id, 0, 0);
    if (p == (char *)-1) { perror("shm-put: shmat"); return 1; }
    strncpy(p, argv[3], 4095);
    shmdt(p);
    printf("%d\n", id);
    return 0;
  }
  if (!strcmp(cmd, "shm-get") && argc == 3) {
    int id = shmget((key_t)strtol(argv[2], 0, 0), 0, 0);
    if (id < 0) { perror("shm-get: shmget"); return 1; }
    char *p = shmat(id, 0, SHM_RDONLY);
    if (p == (char *)-1) { perror("shm-get: shmat"); return 1; }
    printf("%s\n", p);
    return 0;
  }
  return usage();
}
`;

/**
 * Compiles nbxtool (static, so it runs in the busybox rootfs) into dir and
 * copies it to ROOTFS/bin/nbxtool; returns the host path. busybox has no UDP
 * nc and no SysV IPC applets: this is the smallest thing that does both.
 */
export function buildTool(dir: string, rootfs: string): string {
  const src = join(dir, "nbxtool.c");
  const bin = join(dir, "nbxtool");
  writeFileSync(src, TOOL_C);
  const cc = Bun.which("gcc") ?? Bun.which("cc");
  if (!cc) throw new Error("the network tests need gcc (and libc6-dev) to build their static helper: apt-get install -y gcc libc6-dev");
  const r = sh([cc, "-static", "-O2", "-o", bin, src], { timeoutMs: 60000 });
  if (r.code !== 0) throw new Error(`cannot build the static test helper (needs libc6-dev): ${r.stderr.trim()}`);
  copyFileSync(bin, join(rootfs, "bin/nbxtool"));
  Bun.spawnSync(["chmod", "0755", join(rootfs, "bin/nbxtool")]);
  return bin;
}

// ---------------------------------------------------------------- processes and namespaces

/** The link text of /proc/PID/ns/TYPE, e.g. "net:[4026532280]" (undefined when gone). */
export function nsLink(pid: number | "self", type: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${type}`);
  } catch {
    return undefined;
  }
}

export const inodeOf = (link: string | undefined): number => Number(/\[(\d+)\]/.exec(link ?? "")?.[1] ?? Number.NaN);

/** Proportional set size of a process in KiB (smaps_rollup). */
export function pssKiB(pid: number): number {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const m = /^Pss:\s+(\d+) kB/m.exec(text);
  if (!m) throw new Error(`no Pss line in /proc/${pid}/smaps_rollup`);
  return Number(m[1]);
}

export function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** An IPv4 address and prefix check: is ip inside cidr? */
export function inSubnet(ip: string, cidr: string): boolean {
  const num = (a: string) => a.split(".").reduce((n, p) => n * 256 + Number(p), 0);
  const [base, bits] = cidr.split("/") as [string, string];
  const size = 2 ** (32 - Number(bits));
  return Math.floor(num(ip) / size) === Math.floor(num(base) / size);
}

// ---------------------------------------------------------------- a test file's set-up and clean-up

export interface Inspect {
  Id: string;
  Name: string | null;
  State: { Status: string; Running: boolean; Pid: number; MonitorPid?: number; ExitCode: number | null };
  Network: {
    mode: string;
    ip?: string;
    gateway?: string;
    prefix?: number;
    subnet?: string;
    bridge?: string;
    hostVeth?: string;
    target?: string;
    ports: { hostIp: string; hostPort: number; containerPort: number; protocol: string }[];
  } | null;
  Ports: string;
  Pod: string | null;
}

export interface NetTests {
  /** host sysctls as they were when the file started (restored in afterAll) */
  readonly guard: SysctlGuard;
  /** host path of nbxtool (built in beforeAll; also in ROOTFS/bin) */
  tool(): string;
  /** every container id this file started with runD */
  readonly ids: Set<string>;
  /** `nsbox run -d ...args`: expects exit 0, returns (and records) the id */
  runD(args: string[], opts?: RunOptions): Promise<string>;
  /** `nsbox exec REF argv`: the result */
  exec(ref: string, argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** `nsbox exec`, expecting exit 0: stdout */
  mustExec(ref: string, argv: string[], opts?: RunOptions): Promise<string>;
  inspect(ref: string, opts?: RunOptions): Promise<Inspect>;
  /** removes every container and pod of the file's state root (and of extra env), then `nsbox network prune` */
  removeAll(opts?: RunOptions): Promise<void>;
}

/**
 * Call once at the top level of a network test file, after useNsbox: records
 * the host's sysctls now, builds nbxtool in beforeAll, and in afterAll removes
 * every container and pod left, runs `nsbox network prune`, and writes back any
 * sysctl that still differs from what it was (saying so on stderr).
 */
export function useNetTests(ctx: NsboxContext): NetTests {
  const guard = new SysctlGuard();
  let toolPath = "";
  const ids = new Set<string>();
  beforeAll(() => {
    toolPath = buildTool(ctx.tmp, ctx.rootfs);
  });
  const must = async (args: string[], opts?: RunOptions): Promise<RunResult> => {
    const r = await ctx.nsbox(args, opts);
    if (r.code !== 0) throw new Error(`nsbox ${args.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r;
  };
  const t: NetTests = {
    guard,
    tool: () => toolPath,
    ids,
    async runD(args, opts) {
      const r = await must(["run", "-d", ...args], opts);
      const id = r.stdout.trim();
      if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`nsbox run -d printed ${JSON.stringify(r.stdout)}`);
      ids.add(id);
      return id;
    },
    exec: (ref, argv, opts) => ctx.nsbox(["exec", ...(opts?.input !== undefined ? ["-i"] : []), ref, ...argv], opts),
    async mustExec(ref, argv, opts) {
      const r = await t.exec(ref, argv, opts);
      if (r.code !== 0) throw new Error(`nsbox exec ${ref} ${argv.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
      return r.stdout;
    },
    async inspect(ref, opts) {
      const r = await must(["inspect", ref], opts);
      return (JSON.parse(r.stdout) as Inspect[])[0] as Inspect;
    },
    async removeAll(opts) {
      const pods = await ctx.nsbox(["pod", "ps", "--format", "json"], opts);
      for (const l of pods.stdout.split("\n").filter(Boolean)) {
        const name = (JSON.parse(l) as { Name: string }).Name;
        await ctx.nsbox(["pod", "rm", "-f", name], opts);
      }
      const ps = await ctx.nsbox(["ps", "-aq", "--no-trunc"], opts);
      const left = ps.stdout.split("\n").filter(Boolean);
      if (left.length) await ctx.nsbox(["rm", "-f", ...left], opts);
      await ctx.nsbox(["network", "prune"], opts);
    },
  };
  ctx.beforeCleanup(async () => {
    await t.removeAll();
    const restored = guard.restore();
    if (restored.length) console.error(`net tests: restored host sysctls: ${restored.join("; ")}`);
  });
  return t;
}
