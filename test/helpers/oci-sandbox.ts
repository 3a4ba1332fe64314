/**
 * The sandbox every OCI client test (podman, containerd, runtime-tools) runs
 * its client and runtime in, so that nothing they do reaches the host's
 * cgroups or mounts:
 *
 *  - a fresh cgroup nsbox-ocitest-<random> below the test's own cgroup in
 *    every v1 hierarchy (cpuset gets its parent's cpus and mems), which the
 *    sandbox's first process joins: moving down inside our own subtree, never
 *    out of it;
 *  - then a cgroup namespace rooted there and a private mount namespace where
 *    /sys/fs/cgroup is a new tmpfs holding fresh mounts of the same v1
 *    hierarchies (which, in the cgroup namespace, show that cgroup as their
 *    root). A runtime that writes cgroupsPath "/cgrouptest" (runtime-tools
 *    does) or podman's cgroup parent ends up inside our dir, never at a
 *    hierarchy's root, and everything goes with cleanup();
 *  - the hybrid host's cgroup2 mount (/sys/fs/cgroup/unified) is simply not
 *    there inside: crun refuses hybrid hosts, and the three runtimes must see
 *    the same layout.
 *
 * On a pure cgroup v2 host the same is done with the one cgroup2 hierarchy.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Hierarchy {
  /** mount point on the host (/sys/fs/cgroup/memory) */
  point: string;
  /** its name below /sys/fs/cgroup inside the sandbox (memory), "" for a v2 root mount */
  name: string;
  fstype: "cgroup" | "cgroup2";
  /** the super options to mount it again with (memory, or none,name=systemd) */
  options: string;
  /** the test process's cgroup in it */
  own: string;
}

/** The cgroup hierarchies to recreate inside the sandbox (the hybrid host's cgroup2 is left out). */
export function hostHierarchies(): Hierarchy[] {
  const self = readFileSync("/proc/self/cgroup", "utf8").split("\n");
  const ownOf = (key: (ctrls: string[]) => boolean): string => {
    for (const line of self) {
      const m = /^\d+:([^:]*):(.*)$/.exec(line);
      if (m && key((m[1] as string).split(","))) return m[2] as string;
    }
    return "/";
  };
  const out: Hierarchy[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const point = line.slice(0, sep).split(" ")[4] ?? "";
    const [fstype, , superOpts = ""] = line.slice(sep + 3).split(" ");
    if (!point.startsWith("/sys/fs/cgroup")) continue;
    if (fstype === "cgroup") {
      const ctrls = superOpts.split(",").filter((o) => o !== "rw" && o !== "ro" && !o.startsWith("release_agent="));
      const named = ctrls.find((c) => c.startsWith("name="));
      const real = ctrls.filter((c) => !c.includes("=") && c !== "noprefix" && c !== "clone_children" && c !== "xattr" && c !== "cpuset_v2_mode");
      const options = real.length ? ctrls.join(",") : `none,${ctrls.join(",")}`;
      const own = ownOf((cs) => (named ? cs.includes(named) : real.every((r) => cs.includes(r))));
      out.push({ point, name: point.slice("/sys/fs/cgroup/".length), fstype, options, own });
    } else if (fstype === "cgroup2" && point === "/sys/fs/cgroup") {
      out.push({ point, name: "", fstype, options: "", own: ownOf((cs) => cs.length === 1 && cs[0] === "") });
    }
  }
  // a cgroup2 mount beside v1 ones (hybrid) is not recreated; on a pure v2 host it is the only one
  return out.some((h) => h.fstype === "cgroup") ? out.filter((h) => h.fstype === "cgroup") : out;
}

function shq(word: string): string {
  return /^[A-Za-z0-9_./=:@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

function rmdirTree(dir: string): string[] {
  const left: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return left;
  }
  for (const name of names) {
    const child = join(dir, name);
    try {
      if (statSync(child).isDirectory()) left.push(...rmdirTree(child));
    } catch {
      // gone meanwhile
    }
  }
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return left;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return left;
      // a process that was just killed may still be leaving it
      Bun.sleepSync(20);
    }
  }
  left.push(dir);
  return left;
}

export class Sandbox {
  readonly leaf = `nsbox-ocitest-${randomBytes(4).toString("hex")}`;
  readonly hierarchies = hostHierarchies();
  /** the sandbox's cgroup dir in each hierarchy, on the host */
  readonly dirs: string[];

  /** the holder process of a long-lived sandbox (start()) */
  private holder?: ReturnType<typeof Bun.spawn>;

  /**
   * tmpfs: existing dirs that get an empty tmpfs of their own inside, e.g.
   * /dev/shm (podman's lock file /dev/shm/libpod_lock is global otherwise) or
   * /run (containerd's shims put their sockets and runc state under /run/containerd).
   */
  constructor(private readonly opts: { tmpfs?: string[] } = {}) {
    if (!this.hierarchies.length) throw new Error("no cgroup hierarchy is mounted under /sys/fs/cgroup");
    this.dirs = this.hierarchies.map((h) => join(h.point, h.own, this.leaf));
    for (const [i, h] of this.hierarchies.entries()) {
      const dir = this.dirs[i] as string;
      mkdirSync(dir);
      if (h.name === "cpuset") {
        // a new cpuset cgroup has no cpus or mems: nothing could join it
        for (const f of ["cpuset.cpus", "cpuset.mems"]) writeFileSync(join(dir, f), readFileSync(join(h.point, h.own, f)));
      }
      if (h.fstype === "cgroup2") {
        // let the sandbox's runtimes use the controllers below it
        const ctrls = readFileSync(join(h.point, h.own, "cgroup.subtree_control"), "utf8")
          .trim()
          .split(/\s+/)
          .filter(Boolean);
        const sub = join(dir, "cgroup.subtree_control");
        for (const c of ctrls) {
          try {
            writeFileSync(sub, `+${c}`);
          } catch {
            // not delegable here: the runtimes will say so
          }
        }
      }
    }
  }

  /** The shell script that joins the cgroup, enters the namespaces, remounts the hierarchies and execs "$@". */
  private script(): string {
    const join_ = this.joinCgroups();
    const mounts = this.hierarchies
      .map((h) =>
        h.fstype === "cgroup2"
          ? "mount -t cgroup2 cgroup2 /sys/fs/cgroup"
          : `mkdir -p /sys/fs/cgroup/${shq(h.name)} && mount -t cgroup -o ${shq(h.options)} cgroup /sys/fs/cgroup/${shq(h.name)}`,
      )
      .join(" && ");
    const v2 = this.hierarchies[0]?.fstype === "cgroup2";
    const inner = [
      "set -e",
      "umount -R -l /sys/fs/cgroup",
      v2 ? "" : "mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs /sys/fs/cgroup",
      mounts,
      ...(this.opts.tmpfs ?? []).map((d) => `mount -t tmpfs -o mode=${d === "/dev/shm" ? "1777" : "755"},nosuid,nodev tmpfs ${shq(d)}`),
      'exec "$@"',
    ]
      .filter(Boolean)
      .join("\n");
    return `${join_} && exec unshare --mount --cgroup --propagation private sh -c ${shq(inner)} sandbox "$@"`;
  }

  /** The shell words that put "$$" into the sandbox's cgroups. */
  private joinCgroups(): string {
    return this.dirs.map((d) => `echo $$ > ${shq(join(d, "cgroup.procs"))}`).join(" && ");
  }

  /**
   * A long-lived sandbox: one holder process keeps the namespaces, and enter()
   * runs each command in them (podman's storage mounts must outlive a command).
   */
  async start(): Promise<void> {
    this.holder = Bun.spawn(this.argv(["sh", "-c", "echo ready; exec sleep 1000000"]), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const reader = (this.holder.stdout as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    reader.releaseLock();
    if (first.done || !new TextDecoder().decode(first.value).includes("ready")) {
      const err = await new Response(this.holder.stderr as ReadableStream<Uint8Array>).text();
      throw new Error(`the sandbox did not start: ${err.trim()}`);
    }
  }

  /** argv that runs cmd in the started sandbox's namespaces and cgroups. */
  enter(cmd: string[]): string[] {
    if (!this.holder) throw new Error("Sandbox.enter() before start()");
    return ["sh", "-c", `${this.joinCgroups()} && exec nsenter -t ${this.holder.pid} -m -C -- "$@"`, "enter", ...cmd];
  }

  /** argv that runs cmd inside a sandbox of its own (namespaces made for it). */
  argv(cmd: string[]): string[] {
    return ["sh", "-c", this.script(), "sandbox", ...cmd];
  }

  /** One shell command line (for tmux and hyperfine). */
  command(cmd: string[]): string {
    return this.argv(cmd).map(shq).join(" ");
  }

  /** Removes the sandbox's cgroups (every process in them must be gone); returns the dirs that could not be removed. */
  cleanup(): string[] {
    const left: string[] = [];
    for (const d of this.dirs) if (existsSync(d)) left.push(...rmdirTree(d));
    return left;
  }

  /** pids still in the sandbox's cgroups (any hierarchy, any depth) */
  pids(): number[] {
    const out = new Set<number>();
    const walk = (dir: string) => {
      try {
        for (const p of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) out.add(Number(p));
        for (const n of readdirSync(dir)) {
          const c = join(dir, n);
          if (statSync(c).isDirectory()) walk(c);
        }
      } catch {
        // gone meanwhile
      }
    };
    for (const d of this.dirs) walk(d);
    return [...out];
  }

  /** SIGKILL whatever is still inside (after a test failed half-way), then remove the cgroups. */
  async destroy(): Promise<string[]> {
    this.holder?.kill("SIGKILL");
    await this.holder?.exited;
    for (let i = 0; i < 20; i++) {
      const pids = this.pids();
      if (!pids.length) break;
      for (const p of pids) {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          // gone
        }
      }
      await Bun.sleep(100);
    }
    return this.cleanup();
  }
}
