/**
 * podman as a test client of an OCI runtime (crun, runc or nsbox), with
 * nothing shared with the host's podman: its storage, run root, tmp dir and
 * network config dir are in a private temp dir, events go nowhere, cgroups are
 * cgroupfs below the sandbox's own cgroup (test/helpers/oci-sandbox.ts), and
 * every command runs in that sandbox's namespaces (so podman's overlay mounts
 * and its /dev/shm lock stay there). Containers get --network none and
 * explicit ulimits (podman's default RLIMIT_NOFILE/NPROC are above what root
 * may set here: its bounding set lacks CAP_SYS_RESOURCE).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Sandbox } from "./oci-sandbox.ts";

export const REPO = resolve(import.meta.dir, "../..");
export const IMAGE = "localhost/nsbox-ocitest:latest";

/** The nsbox under test: $NSBOX, else dist/nsbox. */
export function nsboxPath(): string {
  return resolve(process.env.NSBOX ?? join(REPO, "dist/nsbox"));
}

/** The runtimes the client tests run against: OCI_RUNTIMES=crun,runc,nsbox (default nsbox), nsbox = $NSBOX or dist/nsbox. */
export function testRuntimes(): { name: string; path: string }[] {
  const names = (process.env.OCI_RUNTIMES ?? "nsbox").split(",").filter(Boolean);
  return names.map((name) => ({ name, path: name === "nsbox" ? nsboxPath() : (Bun.which(name) ?? name) }));
}

export interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** The flags every `podman run` of the tests gets. */
export const RUN_FLAGS = ["--network", "none", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", "--cgroup-parent", "/ocitest"];

export class Podman {
  readonly dir = mkdtempSync(join(tmpdir(), "nsbox-ocitest-podman-"));
  readonly sandbox = new Sandbox({ tmpfs: ["/dev/shm"] });

  /**
   * runtime: a name podman knows (crun, runc) or "nsbox", which the private
   * containers.conf maps to the nsbox binary, as the README tells users to.
   */
  constructor(
    readonly runtime: string,
    nsbox = nsboxPath(),
  ) {
    for (const d of ["storage", "run", "tmp", "networks"]) mkdirSync(join(this.dir, d));
    writeFileSync(
      this.conf,
      [
        "[containers]",
        // the ulimits also for what the tests cannot pass --ulimit to (a pod's infra container)
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
        "[engine]",
        // podman then passes --log-format=json and shows the runtime's own error message
        'runtime_supports_json = ["crun", "runc", "nsbox"]',
        "[engine.runtimes]",
        `nsbox = [${JSON.stringify(nsbox)}]`,
        "",
      ].join("\n"),
    );
  }

  /** a containers.conf of its own (CONTAINERS_CONF) */
  get conf(): string {
    return join(this.dir, "containers.conf");
  }

  /** podman and its global flags (runtime: another runtime for this command) */
  base(runtime = this.runtime): string[] {
    return [
      "podman",
      "--root",
      join(this.dir, "storage"),
      "--runroot",
      join(this.dir, "run"),
      "--tmpdir",
      join(this.dir, "tmp"),
      "--network-config-dir",
      join(this.dir, "networks"),
      "--storage-driver",
      "overlay",
      "--cgroup-manager",
      "cgroupfs",
      "--events-backend",
      "none",
      "--runtime",
      runtime,
    ];
  }

  /** The argv of one podman command inside the sandbox (for tmux, hyperfine). */
  argv(args: string[], runtime = this.runtime): string[] {
    return this.sandbox.enter(["env", `CONTAINERS_CONF=${this.conf}`, ...this.base(runtime), ...args]);
  }

  async run(args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<Out> {
    const proc = Bun.spawn(this.argv(args), {
      stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
      stdout: "pipe",
      stderr: "pipe",
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 60000);
    const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    await proc.exited;
    clearTimeout(timer);
    return { code: proc.exitCode ?? 128 + 9, stdout, stderr };
  }

  /** run(), and a non-zero exit throws with podman's stderr. */
  async ok(args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.run(args, opts);
    if (r.code !== 0) throw new Error(`podman ${args.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /** Starts the sandbox and imports the busybox rootfs as IMAGE. */
  async setup(rootfs: string): Promise<void> {
    await this.sandbox.start();
    const tar = Bun.spawnSync(["tar", "-C", rootfs, "-c", "."], { stdout: "pipe", stderr: "pipe" });
    if (tar.exitCode !== 0) throw new Error(`tar of ${rootfs} failed: ${tar.stderr.toString()}`);
    const proc = Bun.spawn(this.argv(["import", "--change", "CMD=/bin/sh", "-", IMAGE]), { stdin: tar.stdout, stdout: "pipe", stderr: "pipe" });
    const err = await new Response(proc.stderr).text();
    if ((await proc.exited) !== 0) throw new Error(`podman import failed: ${err.trim()}`);
  }

  /** Removes every container, pod and image, then the sandbox and the temp dir; returns what was left. */
  async teardown(): Promise<string[]> {
    const problems: string[] = [];
    try {
      await this.run(["pod", "rm", "-f", "-a", "-t", "0"]);
      await this.run(["rm", "-f", "-a", "-t", "0"]);
      await this.run(["rmi", "-f", "-a"]);
      // the storage's overlay mounts live in the sandbox's mount namespace: gone with it
    } catch (e) {
      problems.push(`podman clean-up: ${(e as Error).message}`);
    }
    problems.push(...(await this.sandbox.destroy()).map((d) => `cgroup left: ${d}`));
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch (e) {
      problems.push(`cannot remove ${this.dir}: ${(e as Error).message}`);
    }
    return problems;
  }
}

/** The busybox rootfs: dist/rootfs/busybox (make rootfs), else one made with `nsbox rootfs busybox` in a temp dir. */
export function busyboxRootfs(nsbox: string): { dir: string; cleanup: () => void } {
  const shared = join(REPO, "dist/rootfs/busybox");
  if (Bun.spawnSync(["test", "-x", join(shared, "bin/busybox")]).exitCode === 0) return { dir: shared, cleanup: () => {} };
  const tmp = mkdtempSync(join(tmpdir(), "nsbox-ocitest-rootfs-"));
  const dir = join(tmp, "rootfs");
  const r = existsSync(nsbox) ? Bun.spawnSync([nsbox, "rootfs", "busybox", dir], { stdout: "pipe", stderr: "pipe" }) : undefined;
  if (r?.exitCode !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(r ? `${nsbox} rootfs busybox failed: ${r.stderr.toString().trim()}` : `${nsbox} is missing: run make build`);
  }
  return { dir, cleanup: () => rmSync(tmp, { recursive: true, force: true }) };
}

/** Waits until check() is true, polling; false after limitMs. */
export async function waitFor(check: () => boolean | Promise<boolean>, limitMs = 10000): Promise<boolean> {
  for (let i = 0; i < limitMs / 100; i++) {
    if (await check()) return true;
    await Bun.sleep(100);
  }
  return check();
}
