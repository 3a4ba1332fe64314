/**
 * A containerd of the test's own: root, state, sockets, opt dir and config in
 * a temp dir, the CRI plugin off, started in a sandbox (test/helpers/oci-sandbox.ts)
 * whose /run is a private tmpfs (the runc shim keeps its sockets and the
 * runtime's --root under /run/containerd). ctr talks to it with --address.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Out } from "./oci-podman.ts";
import { Sandbox } from "./oci-sandbox.ts";

export const CTR_IMAGE = "localhost/nsbox-ocitest:latest";
const NAMESPACE = "ocitest";

export class Containerd {
  readonly dir = mkdtempSync(join(tmpdir(), "nsbox-ocitest-containerd-"));
  readonly sandbox = new Sandbox({ tmpfs: ["/run"] });
  readonly socket = join(this.dir, "containerd.sock");
  private daemon?: ReturnType<typeof Bun.spawn>;
  private log = "";

  async start(): Promise<void> {
    const conf = join(this.dir, "config.toml");
    for (const d of ["root", "state", "opt"]) mkdirSync(join(this.dir, d));
    writeFileSync(
      conf,
      [
        "version = 2",
        `root = "${join(this.dir, "root")}"`,
        `state = "${join(this.dir, "state")}"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
        "[grpc]",
        `  address = "${this.socket}"`,
        "[ttrpc]",
        `  address = "${this.socket}.ttrpc"`,
        "[debug]",
        `  address = "${join(this.dir, "debug.sock")}"`,
        "[metrics]",
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${join(this.dir, "opt")}"`,
        "",
      ].join("\n"),
    );
    await this.sandbox.start();
    this.daemon = Bun.spawn(this.sandbox.enter(["containerd", "--config", conf]), { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const reader = (this.daemon.stderr as ReadableStream<Uint8Array>).getReader();
    void (async () => {
      const dec = new TextDecoder();
      for (;;) {
        const c = await reader.read();
        if (c.done) break;
        this.log = (this.log + dec.decode(c.value)).slice(-20000);
      }
    })();
    for (let i = 0; i < 200 && !existsSync(this.socket); i++) await Bun.sleep(50);
    if (!existsSync(this.socket)) throw new Error(`containerd did not start in 10 s: ${this.log.trim().split("\n").slice(-3).join(" / ")}`);
    const v = await this.ctr(["version"]);
    if (v.code !== 0) throw new Error(`ctr version failed: ${v.stderr}`);
  }

  /** The last lines containerd logged (for failures). */
  logTail(n = 10): string {
    return this.log.trim().split("\n").slice(-n).join("\n");
  }

  ctrArgv(args: string[]): string[] {
    return this.sandbox.enter(["ctr", "--address", this.socket, "--namespace", NAMESPACE, ...args]);
  }

  async ctr(args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<Out> {
    const proc = Bun.spawn(this.ctrArgv(args), {
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

  async ok(args: string[]): Promise<string> {
    const r = await this.ctr(args);
    if (r.code !== 0) throw new Error(`ctr ${args.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /** Imports rootfs as CTR_IMAGE from a docker-archive made here (manifest.json, config, one layer). */
  async importRootfs(rootfs: string): Promise<void> {
    const arch = join(this.dir, "archive");
    mkdirSync(arch);
    const tar = Bun.spawnSync(["tar", "-C", rootfs, "-cf", join(arch, "layer.tar"), "."], { stderr: "pipe" });
    if (tar.exitCode !== 0) throw new Error(`tar of ${rootfs} failed: ${tar.stderr.toString()}`);
    const layerSum = createHash("sha256")
      .update(readFileSync(join(arch, "layer.tar")))
      .digest("hex");
    const config = JSON.stringify({
      architecture: process.arch === "arm64" ? "arm64" : "amd64",
      os: "linux",
      config: { Cmd: ["/bin/sh"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
      rootfs: { type: "layers", diff_ids: [`sha256:${layerSum}`] },
    });
    const configSum = createHash("sha256").update(config).digest("hex");
    writeFileSync(join(arch, `${configSum}.json`), config);
    writeFileSync(join(arch, "manifest.json"), JSON.stringify([{ Config: `${configSum}.json`, RepoTags: [CTR_IMAGE], Layers: ["layer.tar"] }]));
    const file = join(this.dir, "image.tar");
    const pack = Bun.spawnSync(["tar", "-C", arch, "-cf", file, "manifest.json", `${configSum}.json`, "layer.tar"], { stderr: "pipe" });
    if (pack.exitCode !== 0) throw new Error(`tar of the docker-archive failed: ${pack.stderr.toString()}`);
    rmSync(arch, { recursive: true, force: true });
    await this.ok(["image", "import", file]);
  }

  /** Deletes tasks, containers and images, stops containerd, removes the sandbox and the temp dir; returns what was left. */
  async stop(): Promise<string[]> {
    const problems: string[] = [];
    if (this.daemon) {
      for (const id of (await this.ctr(["task", "ls", "-q"])).stdout.split("\n").filter(Boolean)) {
        await this.ctr(["task", "kill", "-s", "SIGKILL", id]);
        await Bun.sleep(200);
        await this.ctr(["task", "rm", "-f", id]);
      }
      for (const id of (await this.ctr(["container", "ls", "-q"])).stdout.split("\n").filter(Boolean)) await this.ctr(["container", "rm", id]);
      for (const ref of (await this.ctr(["image", "ls", "-q"])).stdout.split("\n").filter(Boolean)) await this.ctr(["image", "rm", ref]);
      this.daemon.kill("SIGTERM");
      const t = setTimeout(() => this.daemon?.kill("SIGKILL"), 10000);
      await this.daemon.exited;
      clearTimeout(t);
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
