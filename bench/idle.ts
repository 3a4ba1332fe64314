/**
 * Section "idle": what the host keeps per idle detached container. 20
 * `nsbox run -d --net none ROOTFS sleep 3600`; what nsbox keeps for each is its
 * monitor (the parent of the container's PID 1, inspect's State.MonitorPid),
 * measured as PSS from /proc/PID/smaps_rollup (shared pages split among the
 * processes that share them, so 20 monitors sum to what they really cost).
 * Target: at most 1 MiB per container. No Bun process may stay per container.
 *
 * The same for podman's conmon, when podman and conmon are installed and can
 * run containers here (podman's storage, run root and cgroups all inside the
 * bench's temp dir and cgroup; the image is a tarball of the same rootfs).
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type BenchContext, BenchError, exec, median, nsboxArgv, type SectionResult, shq, wrapArgv } from "./lib.ts";
import { commOf, type Mem, memOf, ppidOf, sumMem } from "./procs.ts";

export const title = "host memory per idle detached container (`run -d ROOTFS sleep 3600`)";

const COUNT = 20;
const TARGET_KIB = 1024;

/** Processes running the nsbox binary (a Bun process) that belong to this bench (its temp dir in their command line or environment). */
function nsboxProcesses(ctx: BenchContext): number[] {
  const exe = realpathSync(ctx.opts.nsbox);
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readlinkSync(`/proc/${e}/exe`) !== exe) continue;
      const where = readFileSync(`/proc/${e}/cmdline`, "utf8") + readFileSync(`/proc/${e}/environ`, "utf8");
      if (where.includes(ctx.tmp)) out.push(Number(e));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

interface Measured {
  perContainer: Mem;
  /** median per process, for the notes */
  medianPss: number;
  processes: number;
}

function average(mems: Mem[]): Mem {
  return sumMem(mems, mems.length);
}

// ---------------------------------------------------------------- nsbox

interface NsboxInspect {
  Id: string;
  State: { Running: boolean; Pid: number; MonitorPid: number };
}

function measureNsbox(ctx: BenchContext): { m: Measured; bunPerContainer: number; notes: string[] } {
  const nsbox = ctx.opts.nsbox;
  const root = `--root=${ctx.nsboxRoot}`;
  const ids: string[] = [];
  try {
    const bunBefore = nsboxProcesses(ctx).length;
    for (let i = 0; i < COUNT; i++) {
      // run -d as a user would run it (no wrapper: nothing is timed here)
      const argv = nsboxArgv(ctx, ["-d", "--net", "none"], ["sleep", "3600"]).map((a) => (typeof a === "string" ? a : a.sh));
      const r = exec(argv, { env: ctx.env });
      const id = r.stdout.trim();
      if (r.code !== 0 || !/^[0-9a-f]{64}$/.test(id)) throw new BenchError(`nsbox run -d failed (exit ${r.code}): ${r.stderr.trim()}`);
      ids.push(id);
    }
    Bun.sleepSync(1000); // idle: whatever start-up left behind is gone
    const r = exec([nsbox, root, "inspect", ...ids], { env: ctx.env });
    if (r.code !== 0) throw new BenchError(`nsbox inspect failed: ${r.stderr.trim()}`);
    const info = JSON.parse(r.stdout) as NsboxInspect[];
    const mems: Mem[] = [];
    for (const c of info) {
      const mon = c.State.MonitorPid;
      if (!c.State.Running || !mon) throw new BenchError(`container ${c.Id.slice(0, 12)} is not running or has no monitor`);
      if (ppidOf(c.State.Pid) !== mon)
        throw new BenchError(`container ${c.Id.slice(0, 12)}: its PID 1 (${c.State.Pid}) is not a child of its monitor (${mon})`);
      if (commOf(mon) !== "nsbox-monitor") throw new BenchError(`container ${c.Id.slice(0, 12)}: its monitor ${mon} is "${commOf(mon)}", not nsbox-monitor`);
      mems.push(memOf(mon));
    }
    const bun = nsboxProcesses(ctx).length - bunBefore;
    return {
      m: { perContainer: average(mems), medianPss: median(mems.map((x) => x.pssKib)), processes: mems.length },
      bunPerContainer: bun / COUNT,
      notes: [
        `nsbox: ${mems.length} monitors (nsbox-monitor, exec'd from a memfd), one per container; nsbox (Bun) processes left running for ${COUNT} containers: ${bun}`,
      ],
    };
  } finally {
    if (ids.length) {
      const r = exec([nsbox, root, "rm", "-f", ...ids], { env: ctx.env });
      if (r.code !== 0) console.error(`bench idle: nsbox rm -f: ${r.stderr.trim()}`);
    }
  }
}

// ---------------------------------------------------------------- conmon

/** A timer that resolves to undefined, and can be cancelled (a pending timer would keep the bench alive). */
function timeout(ms: number): { expired: Promise<undefined>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return { expired, cancel: () => clearTimeout(timer) };
}

const PODMAN_IMAGE = "localhost/nsbox-bench-idle";
const SHM_LOCK = "/dev/shm/libpod_lock";

/** podman's global flags: everything it keeps inside dir, cgroupfs, no events, crun (as the other crun runs: through the wrapper). */
function podmanFlags(dir: string): string[] {
  return [
    "--root",
    join(dir, "storage"),
    "--runroot",
    join(dir, "run"),
    "--tmpdir",
    join(dir, "tmp"),
    "--storage-driver",
    "overlay",
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "none",
    "--runtime",
    "crun",
  ];
}

/**
 * One podman session in one wrapper (one private mount namespace, where the
 * unified cgroup2 mount is gone, as crun needs on a hybrid host, and where
 * podman's overlay mounts stay): import the rootfs, start COUNT containers,
 * print the conmon pids, wait for a line on stdin, remove everything.
 */
function podmanScript(ctx: BenchContext, dir: string, cgroupParent: string): string {
  const p = ["podman", ...podmanFlags(dir)].map(shq).join(" ");
  // crun sets the spec's rlimits: podman's defaults (RLIMIT_NOFILE and RLIMIT_NPROC 1048576) can be above what
  // the host lets us set (no CAP_SYS_RESOURCE in some sandboxes); lower ones are always allowed
  const runFlags = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--cgroup-parent", cgroupParent].map(shq).join(" ");
  return [
    "set -e",
    `tar -C ${shq(ctx.rootfs)} -c . | ${p} import - ${PODMAN_IMAGE} >/dev/null`,
    `i=0; while [ $i -lt ${COUNT} ]; do ${p} run -d ${runFlags} --name nsbox-bench-idle-$i ${PODMAN_IMAGE} sleep 3600 >/dev/null; i=$((i+1)); done`,
    `${p} ps -a --format '{{.ID}}' | while read id; do echo "CONMON $(${p} inspect --format '{{.State.ConmonPid}} {{.State.Pid}}' $id)"; done`,
    "echo READY",
    "read _",
    "set +e",
    `${p} rm -f -t 0 -a >/dev/null`,
    `${p} rmi -f -a >/dev/null`,
    "echo DONE",
  ].join("\n");
}

async function measureConmon(ctx: BenchContext): Promise<{ m?: Measured; note: string }> {
  const missing = ["podman", "conmon"].filter((t) => !Bun.which(t));
  if (missing.length) return { note: `conmon: not measured (${missing.join(" and ")} not installed: apt-get install -y podman conmon)` };
  const version = exec(["podman", "--version"]).stdout.trim();
  const conmonVersion = (exec(["conmon", "--version"]).stdout.split("\n")[0] ?? "").trim();
  const others = exec(["pgrep", "-x", "conmon"]).stdout.trim();
  const lockExisted = existsSync(SHM_LOCK);
  const dir = join(ctx.tmp, "podman");
  const script = podmanScript(ctx, dir, ctx.cgroups.next());
  const proc = Bun.spawn(wrapArgv(ctx.wrapper, ["sh", "-c", script]), { env: ctx.env, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  let out = "";
  const errText = new Response(proc.stderr).text();
  const reader = proc.stdout.getReader();
  const dec = new TextDecoder();
  const readUntil = async (word: string, timeoutMs: number) => {
    const t = timeout(timeoutMs);
    try {
      while (!out.includes(`${word}\n`)) {
        const chunk = await Promise.race([reader.read(), t.expired]);
        if (!chunk || chunk.done) return false;
        out += dec.decode(chunk.value, { stream: true });
      }
      return true;
    } finally {
      t.cancel();
    }
  };
  try {
    if (!(await readUntil("READY", 120000))) {
      proc.kill("SIGKILL");
      await proc.exited;
      const err = (await errText).trim().split("\n").slice(-3).join(" / ");
      return { note: `conmon: not measured (podman could not run the containers here: ${err || `exit ${proc.exitCode}`})` };
    }
    Bun.sleepSync(1000);
    const pairs = out
      .split("\n")
      .filter((l) => l.startsWith("CONMON "))
      .map((l) => l.split(" ").slice(1).map(Number) as [number, number]);
    const mems: Mem[] = [];
    for (const [conmon, pid] of pairs) {
      if (!conmon || commOf(conmon) !== "conmon") throw new BenchError(`podman reported conmon pid ${conmon}, which is "${commOf(conmon)}"`);
      if (ppidOf(pid) !== conmon) throw new BenchError(`podman container pid ${pid} is not a child of conmon ${conmon}`);
      mems.push(memOf(conmon));
    }
    if (mems.length !== COUNT) throw new BenchError(`podman started ${mems.length} containers, not ${COUNT}`);
    return {
      m: { perContainer: average(mems), medianPss: median(mems.map((x) => x.pssKib)), processes: mems.length },
      note: `conmon: ${version}, conmon ${conmonVersion.replace(/^conmon version /, "")}, runtime crun, cgroupfs, --network none; ${mems.length} conmon processes, one per container`,
    };
  } finally {
    // let the session remove its containers, image and storage
    try {
      proc.stdin.write("\n");
      proc.stdin.end();
    } catch {
      // already gone
    }
    reader.releaseLock();
    const t = timeout(60000);
    const done = await Promise.race([proc.exited, t.expired]);
    t.cancel();
    if (done === undefined) {
      proc.kill("SIGKILL");
      console.error("bench idle: the podman session did not finish its clean-up in 60 s (killed)");
    }
    // podman's SHM lock file is global: ours to remove only if we made it and no other podman is running
    if (!lockExisted && existsSync(SHM_LOCK) && !others && !exec(["pgrep", "-x", "podman"]).stdout.trim()) rmSync(SHM_LOCK, { force: true });
  }
}

// ---------------------------------------------------------------- section

export async function run(ctx: BenchContext): Promise<SectionResult> {
  const n = measureNsbox(ctx);
  if (n.bunPerContainer !== 0) throw new BenchError(`nsbox left ${n.bunPerContainer * COUNT} Bun processes for ${COUNT} detached containers (expected none)`);
  const c = await measureConmon(ctx);
  const kib = n.m.perContainer.pssKib;
  const notes = [
    `target: at most ${TARGET_KIB} KiB per container: ${kib <= TARGET_KIB ? "met" : "NOT met"} (${kib.toFixed(0)} KiB PSS, median ${n.m.medianPss.toFixed(0)} KiB)`,
    ...n.notes,
  ];
  if (c.m) {
    notes.push(
      `${c.note}: PSS ${c.m.perContainer.pssKib.toFixed(0)} KiB per container (median ${c.m.medianPss.toFixed(0)}), RSS ${c.m.perContainer.rssKib.toFixed(0)} KiB; nsbox/conmon (PSS) = ${(kib / c.m.perContainer.pssKib).toFixed(2)}`,
    );
  } else notes.push(c.note);
  notes.push(
    "PSS from /proc/PID/smaps_rollup of the process that stays on the host per container (nsbox: its monitor; podman: conmon), averaged over the containers; RSS counts shared pages in full",
    "crun/runc `run -d` keep no host process per container (nor the container's logs or exit status): n/a; bwrap has no detached mode: n/a",
  );
  return {
    title,
    tables: [
      {
        title: `${COUNT} idle detached containers: host process kept per container (nsbox: nsbox-monitor)`,
        rows: [
          { metric: "PSS per container (KiB)", values: { nsbox: kib }, digits: 0 },
          { metric: "RSS per container (KiB)", values: { nsbox: n.m.perContainer.rssKib }, digits: 0 },
        ],
      },
    ],
    notes,
  };
}
