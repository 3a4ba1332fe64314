/**
 * Section "net": what the bridge costs.
 *
 *  1. Start-to-exit latency of `run ROOTFS /bin/true` with the bridge (veth,
 *     address, route, NAT table) against --net none, as a ratio; and the same
 *     pair for podman (crun, netavark bridge on a network of the bench's own)
 *     when podman is installed and runs here (otherwise the note says why not).
 *  2. Throughput between two bridge containers (busybox `dd | nc` into
 *     `nc -l > /dev/null`) against the same transfer over lo inside one network
 *     namespace; and iperf3 the same two ways when it is installed.
 *
 * Traffic goes only between the bench's own containers (and inside one
 * container's namespace). Everything is removed at the end: containers, podman's
 * network, its storage mount and the iptables-nft tables netavark created,
 * `nsbox network prune`, and every host sysctl that changed is written back.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Arg,
  type BenchContext,
  BenchError,
  exec,
  hyperfine,
  median,
  mounts,
  mustRunOnce,
  nsboxArgv,
  type Output,
  RATIO_NOTE,
  runOnce,
  type SectionResult,
  type Stats,
} from "./lib.ts";

export const title = "bridge networking: start latency against --net none (and podman), throughput over nsbox0 against lo";

const TRUE = ["/bin/true"];
/** MiB per nc transfer, and transfers per path (alternating bridge / lo). */
const MIB = 300;
const ROUNDS = 3;
const WARM_MIB = 20;
const PORT = 5001;

// ---------------------------------------------------------------- host sysctls

const SYSCTLS = ["net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet", "net.ipv4.conf.nsbox0.route_localnet", "net.ipv4.conf.all.forwarding"];
const sysctlFile = (n: string) => `/proc/sys/${n.replace(/\./g, "/")}`;
function readSysctl(n: string): string | undefined {
  try {
    return readFileSync(sysctlFile(n), "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Writes back every recorded sysctl that still exists and changed; returns what it did. */
function restoreSysctls(before: Map<string, string | undefined>): string[] {
  const out: string[] = [];
  for (const [n, was] of before) {
    const now = readSysctl(n);
    if (was === undefined || now === undefined || now === was) continue;
    try {
      writeFileSync(sysctlFile(n), was);
      out.push(`restored ${n}=${was} (was ${now})`);
    } catch (e) {
      out.push(`cannot restore ${n}=${was}: ${(e as Error).message}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- nsbox helpers

function nsboxBase(ctx: BenchContext): string[] {
  return [ctx.opts.nsbox, `--root=${ctx.nsboxRoot}`];
}

function nsbox(ctx: BenchContext, args: string[]): Output {
  return exec([...nsboxBase(ctx), ...args], { env: ctx.env });
}

/** `nsbox run -d` (with a cgroup below the bench's, as the start section does); returns the id. */
function runDetached(ctx: BenchContext, flags: string[], args: string[]): string {
  const argv = nsboxArgv(ctx, ["-d", ...flags], args).map((a) => (typeof a === "string" ? a : a.sh));
  const r = exec(argv, { env: ctx.env });
  const id = r.stdout.trim();
  if (r.code !== 0 || !/^[0-9a-f]{64}$/.test(id)) throw new BenchError(`nsbox run -d ${flags.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return id;
}

function inspect(ctx: BenchContext, id: string): { pid: number; ip?: string } {
  const r = nsbox(ctx, ["inspect", id]);
  if (r.code !== 0) throw new BenchError(`nsbox inspect ${id.slice(0, 12)}: ${r.stderr.trim()}`);
  const j = (JSON.parse(r.stdout) as { State: { Pid: number }; Network: { ip?: string } | null }[])[0];
  if (!j) throw new BenchError(`nsbox inspect ${id.slice(0, 12)} printed nothing`);
  return { pid: j.State.Pid, ip: j.Network?.ip };
}

// ---------------------------------------------------------------- podman

interface Podman {
  dir: string;
  network: string;
  subnet: string;
  cgroupParent: string;
  /** host paths podman writes outside --root/--runroot, and whether each existed before */
  outside: Map<string, boolean>;
  tablesBefore: Set<string>;
  rootfs: string;
}

function podmanBase(p: Podman): string[] {
  return [
    "podman",
    "--root",
    join(p.dir, "root"),
    "--runroot",
    join(p.dir, "runroot"),
    "--network-config-dir",
    join(p.dir, "net"),
    "--tmpdir",
    join(p.dir, "tmp"),
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "none",
  ];
}

/**
 * `podman run --rm` of the same rootfs (an overlay over it, :O, so podman writes
 * nothing into it). The rlimits are lowered explicitly: podman's defaults raise
 * them, which needs CAP_SYS_RESOURCE (not every root has it).
 */
function podmanArgv(p: Podman, network: string): Arg[] {
  return [
    ...podmanBase(p),
    "run",
    "--rm",
    `--cgroup-parent=${p.cgroupParent}`,
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
    "--network",
    network,
    "--rootfs",
    `${p.rootfs}:O`,
    ...TRUE,
  ];
}

const nftTables = (): Set<string> =>
  new Set(
    exec(["nft", "list", "tables"])
      .stdout.split("\n")
      .map((l) => l.replace(/^table\s+/, "").trim())
      .filter(Boolean),
  );

/** A /24 in 10.213.0.0/16 that no address or route of the host uses. */
function freeSubnet(): string {
  const taken = exec(["ip", "-4", "route", "show", "table", "all"]).stdout + exec(["ip", "-4", "-o", "addr", "show"]).stdout;
  for (let i = 77; i < 250; i++) if (!taken.includes(`10.213.${i}.`)) return `10.213.${i}.0/24`;
  throw new BenchError("no free 10.213.x.0/24 for podman's bench network");
}

/** Podman set up with a bridge network of the bench's own, or the reason it cannot be measured here. */
function setUpPodman(ctx: BenchContext): { podman?: Podman; why?: string } {
  if (!Bun.which("podman")) return { why: "podman is not installed (Debian: apt-get install podman netavark iptables)" };
  const dir = join(ctx.tmp, "podman");
  for (const d of ["root", "runroot", "net", "tmp"]) mkdirSync(join(dir, d), { recursive: true });
  const outside = new Map(["/run/containers", "/var/lib/containers"].map((d) => [d, existsSync(d)]));
  const p: Podman = {
    dir,
    network: `nsbox-bench-${process.pid}`,
    subnet: freeSubnet(),
    cgroupParent: ctx.cgroups.next(),
    outside,
    tablesBefore: nftTables(),
    rootfs: ctx.rootfs,
  };
  const created = exec([...podmanBase(p), "network", "create", "--subnet", p.subnet, p.network]);
  if (created.code !== 0) {
    cleanUpPodman(p);
    return { why: `podman network create failed: ${(created.stderr || created.stdout).trim().split("\n")[0]}` };
  }
  for (const net of [p.network, "none"]) {
    const r = runOnce(ctx, podmanArgv(p, net));
    if (r.code !== 0) {
      cleanUpPodman(p);
      const msg = r.stderr
        .split("\n")
        .filter((l) => l && !/level=warning/.test(l))
        .join(" ")
        .trim();
      return { why: `podman run --network ${net} fails here (exit ${r.code}): ${msg}` };
    }
  }
  return { podman: p };
}

/** Removes podman's network, its storage mount, what it wrote outside tmp, and the firewall tables netavark added. */
function cleanUpPodman(p: Podman): string[] {
  const notes: string[] = [];
  exec([...podmanBase(p), "network", "rm", "--force", p.network]);
  for (const m of mounts()
    .filter((m) => m.point === p.dir || m.point.startsWith(`${p.dir}/`))
    .reverse())
    exec(["umount", "--lazy", m.point]);
  for (const [d, existed] of p.outside) if (!existed) rmSync(d, { recursive: true, force: true });
  for (const t of nftTables()) {
    if (p.tablesBefore.has(t)) continue;
    const [family, name] = t.split(/\s+/) as [string, string];
    // only what netavark made (iptables-nft tables holding its chains)
    if (!exec(["nft", "list", "table", family, name]).stdout.includes("NETAVARK")) continue;
    const r = exec(["nft", "delete", "table", family, name]);
    notes.push(r.code === 0 ? `removed the nft table ${t} that netavark created` : `cannot remove the nft table ${t}: ${r.stderr.trim()}`);
  }
  return notes;
}

// ---------------------------------------------------------------- throughput

/**
 * One `dd | nc` of MIB MiB from the network namespace of process `fromPid` to
 * ip:PORT, timed from here (spawn to exit: nc exits when the server closes,
 * i.e. after every byte arrived). Retries while the server's nc restarts.
 */
function transferSeconds(ctx: BenchContext, fromPid: number, ip: string, mib: number): number {
  const bb = join(ctx.rootfs, "bin/busybox");
  const argv = ["nsenter", `--net=/proc/${fromPid}/ns/net`, bb, "sh", "-c", `${bb} dd if=/dev/zero bs=1M count=${mib} 2>/dev/null | ${bb} nc ${ip} ${PORT}`];
  let last: Output | undefined;
  for (let attempt = 0; attempt < 40; attempt++) {
    const t0 = performance.now();
    last = exec(argv);
    const s = (performance.now() - t0) / 1000;
    if (last.code === 0) return s;
    Bun.sleepSync(50);
  }
  throw new BenchError(`dd | nc to ${ip}:${PORT} failed (exit ${last?.code}): ${last?.stderr.trim()}`);
}

/** iperf3 server in the namespace of serverPid (one test), client in clientPid's; Gbit/s received. */
async function iperfGbits(serverPid: number, clientPid: number, ip: string): Promise<number> {
  const server = Bun.spawn(["nsenter", `--net=/proc/${serverPid}/ns/net`, "iperf3", "-s", "-1", "-B", ip, "-p", "5201"], { stdout: "ignore", stderr: "pipe" });
  try {
    for (let attempt = 0; attempt < 40; attempt++) {
      Bun.sleepSync(50);
      const r = exec(["nsenter", `--net=/proc/${clientPid}/ns/net`, "iperf3", "-c", ip, "-p", "5201", "-t", "2", "-J"]);
      if (r.code !== 0) continue;
      const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
      const bps = j.end?.sum_received?.bits_per_second;
      if (bps) return bps / 1e9;
    }
    throw new BenchError(`iperf3 to ${ip} did not run`);
  } finally {
    server.kill();
    await server.exited;
  }
}

// ---------------------------------------------------------------- the section

export async function run(ctx: BenchContext): Promise<SectionResult> {
  const sysctlsBefore = new Map(SYSCTLS.map((n) => [n, readSysctl(n)]));
  const notes: string[] = [RATIO_NOTE];
  const ids: string[] = [];
  let podman: Podman | undefined;
  try {
    // ---- 1. start latency
    const runs = Math.min(ctx.opts.runs, 40);
    const cmds: { name: string; argv: Arg[] }[] = [
      { name: "nsbox-bridge", argv: nsboxArgv(ctx, ["--net", "bridge"], TRUE) },
      { name: "nsbox-none", argv: nsboxArgv(ctx, ["--net", "none"], TRUE) },
    ];
    for (const c of cmds) mustRunOnce(ctx, c.name, c.argv);
    const pm = setUpPodman(ctx);
    podman = pm.podman;
    if (podman) {
      cmds.push({ name: "podman-bridge", argv: podmanArgv(podman, podman.network) }, { name: "podman-none", argv: podmanArgv(podman, "none") });
      notes.push(
        `crun column: podman ${exec(["podman", "--version"])
          .stdout.trim()
          .replace(
            /^podman version /,
            "",
          )} \`run --rm --rootfs ROOTFS:O\` (crun), bridge = a netavark network of the bench's own (${podman.subnet}), cgroupfs, through the same wrapper; podman's own cost (conmon, storage, its database) is in its numbers`,
      );
    } else notes.push(`podman not measured: ${pm.why}`);
    const lat = hyperfine(ctx, cmds, runs);
    const m = (name: string): Stats | undefined => lat.get(name);
    const nb = m("nsbox-bridge") as Stats;
    const nn = m("nsbox-none") as Stats;
    const pb = m("podman-bridge");
    const pn = m("podman-none");
    notes.push(
      `latency mean ± stddev (ms): ${[...lat].map(([name, s]) => `${name} ${s.mean.toFixed(1)} ± ${s.stddev.toFixed(1)}`).join(", ")} (${runs} runs each)`,
    );

    // ---- 2. throughput
    // The receiver's stdin is a fifo held open and never written: busybox nc would
    // half-close the connection as soon as its stdin ended, and the sender stop.
    // Each transfer's byte count goes to the container's log, checked below.
    const loop = ["sh", "-c", `mkfifo /tmp/idle && exec 3<>/tmp/idle && while true; do nc -l -p ${PORT} <&3 | wc -c; done`];
    const client = runDetached(ctx, ["--net", "bridge"], ["sleep", "600"]);
    ids.push(client);
    const server = runDetached(ctx, ["--net", "bridge"], loop);
    ids.push(server);
    const solo = runDetached(ctx, ["--net", "none"], loop);
    ids.push(solo);
    const c = inspect(ctx, client);
    const s = inspect(ctx, server);
    const o = inspect(ctx, solo);
    if (!s.ip) throw new BenchError("the server container has no address on nsbox0");
    const bridgeS: number[] = [];
    const loS: number[] = [];
    transferSeconds(ctx, c.pid, s.ip, WARM_MIB); // warm-up: ARP, conntrack, page cache of busybox
    transferSeconds(ctx, o.pid, "127.0.0.1", WARM_MIB);
    for (let i = 0; i < ROUNDS; i++) {
      bridgeS.push(transferSeconds(ctx, c.pid, s.ip, MIB));
      loS.push(transferSeconds(ctx, o.pid, "127.0.0.1", MIB));
    }
    // every byte arrived: the receivers logged one count per transfer
    Bun.sleepSync(200);
    for (const id of [server, solo]) {
      const got = nsbox(ctx, ["logs", id]).stdout.trim().split("\n");
      const want = [String(WARM_MIB * 2 ** 20), ...Array(ROUNDS).fill(String(MIB * 2 ** 20))];
      if (got.join(" ") !== want.join(" ")) throw new BenchError(`the receiver ${id.slice(0, 12)} got ${got.join(", ")} bytes, not ${want.join(", ")}`);
    }
    const bridgeMiBs = MIB / median(bridgeS);
    const loMiBs = MIB / median(loS);
    const tput: SectionResult["tables"][number]["rows"] = [
      { metric: "container → container over nsbox0 (MiB/s)", values: { nsbox: bridgeMiBs }, digits: 0 },
      { metric: "lo inside one container (MiB/s)", values: { nsbox: loMiBs }, digits: 0 },
      { metric: "nsbox0 / lo", values: { nsbox: bridgeMiBs / loMiBs }, digits: 2 },
    ];
    notes.push(
      `nc: busybox \`dd if=/dev/zero bs=1M count=${MIB} | nc IP ${PORT}\` into \`nc -l -p ${PORT} | wc -c\` (byte counts checked), median of ${ROUNDS} alternating runs, timed from spawn to exit (nc exits when the receiver closes); the sender runs in the client container's network namespace (nsenter --net), the receiver is a container; lo = sender and receiver in one --net none container. busybox nc moves data in small writes, so per-packet costs dominate (1500-byte MTU on the veth against 64 KiB on lo, the bridge and its netfilter hooks); iperf3's large writes show the bulk ratio`,
      `seconds per ${MIB} MiB: bridge ${bridgeS.map((x) => x.toFixed(2)).join(" ")}; lo ${loS.map((x) => x.toFixed(2)).join(" ")}`,
    );
    if (Bun.which("iperf3")) {
      const ib: number[] = [];
      const il: number[] = [];
      for (let i = 0; i < 2; i++) {
        ib.push(await iperfGbits(s.pid, c.pid, s.ip));
        il.push(await iperfGbits(o.pid, o.pid, "127.0.0.1"));
      }
      tput.push(
        { metric: "iperf3 over nsbox0 (Gbit/s)", values: { nsbox: median(ib) }, digits: 1 },
        { metric: "iperf3 over lo (Gbit/s)", values: { nsbox: median(il) }, digits: 1 },
        { metric: "iperf3 nsbox0 / lo", values: { nsbox: median(ib) / median(il) }, digits: 2 },
      );
      notes.push("iperf3: the host's iperf3 run in the containers' network namespaces (nsenter --net), 2 s per test, median of 2");
    } else notes.push("iperf3 not measured: not installed (apt-get install iperf3)");
    notes.push("podman's throughput is not measured: its containers share the same kernel path (veth + Linux bridge), only the set-up differs");

    return {
      title,
      tables: [
        {
          title: `run ROOTFS /bin/true, bridge against --net none: median of ${runs} runs (crun column: podman, see notes)`,
          rows: [
            { metric: "--net none, median (ms)", values: { nsbox: nn.median, crun: pn?.median }, digits: 1 },
            { metric: "bridge, median (ms)", values: { nsbox: nb.median, crun: pb?.median }, digits: 1 },
            { metric: "bridge − none (ms)", values: { nsbox: nb.median - nn.median, crun: pb && pn ? pb.median - pn.median : undefined }, digits: 1 },
            { metric: "bridge / none", values: { nsbox: nb.median / nn.median, crun: pb && pn ? pb.median / pn.median : undefined }, digits: 2 },
          ],
        },
        { title: "throughput between two bridge containers against lo (nsbox only)", rows: tput },
      ],
      notes,
    };
  } finally {
    if (ids.length) nsbox(ctx, ["rm", "-f", ...ids]);
    if (podman) for (const n of cleanUpPodman(podman)) notes.push(n);
    const prune = nsbox(ctx, ["network", "prune"]);
    if (prune.code !== 0) notes.push(`nsbox network prune failed: ${prune.stderr.trim()}`);
    for (const n of restoreSysctls(sysctlsBefore)) notes.push(`host sysctl: ${n}`);
  }
}
