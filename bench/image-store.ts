/**
 * Section "image-store": running a pulled image, and the disk two images use.
 *
 * Two busybox images are built offline as OCI layouts (test/helpers/images.ts:
 * "base" is one layer, the busybox rootfs; "multi" is base plus a small layer)
 * and pushed with skopeo into docker-registry on 127.0.0.1. nsbox and podman each pull both into
 * a store of their own (podman: overlay storage, crun), then:
 *
 *  - start-to-exit of `run IMAGE /bin/true`: nsbox run --pull never against
 *    podman run --rm, both --net none and without a cgroup (podman
 *    --cgroups=disabled, nsbox --cgroup-manager none: crun refuses this hybrid
 *    host's cgroups), through the bench's wrapper, hyperfine, interleaved;
 *  - disk used after pulling base, then after pulling multi too: the base layer
 *    is stored once, so the second image costs only its own layers.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tarOf, writeLayout } from "../test/helpers/images.ts";
import { push, startRegistry } from "../test/helpers/registry.ts";
import { type BenchContext, BenchError, exec, hyperfine, mustExec, type SectionResult, wrapArgv } from "./lib.ts";

export const title = "run IMAGE and the image store's disk use, against podman";

function podmanArgv(dir: string, args: string[]): string[] {
  const g = ["--root", join(dir, "storage"), "--runroot", join(dir, "run"), "--tmpdir", join(dir, "tmp")];
  return ["podman", ...g, "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", "crun", ...args];
}

/** bytes used under dir (du: each inode once) */
function du(dir: string): number {
  return Number(mustExec(["du", "-s", "--block-size=1", dir]).split("\t")[0]);
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

export async function run(ctx: BenchContext): Promise<SectionResult> {
  const missing = ["docker-registry", "skopeo", "hyperfine"].filter((t) => !Bun.which(t));
  if (missing.length) throw new BenchError(`${missing.join(", ")} not installed (sudo .ci/setup --bench)`);
  const dir = join(ctx.tmp, "image-store");
  mkdirSync(dir, { recursive: true });
  const baseTar = tarOf(ctx.rootfs, join(dir, "base.tar"));
  const extra = join(dir, "extra");
  mkdirSync(join(extra, "srv"), { recursive: true });
  writeFileSync(join(extra, "srv/app"), "app\n");
  const extraTar = tarOf(extra, join(dir, "extra.tar"));
  writeLayout(join(dir, "layout-base"), { layers: [{ tar: baseTar, gzip: true }], name: "base" });
  writeLayout(join(dir, "layout-multi"), {
    layers: [
      { tar: baseTar, gzip: true },
      { tar: extraTar, gzip: true },
    ],
    name: "multi",
  });
  const registry = await startRegistry(join(dir, "registry"));
  try {
    await push(registry, `${join(dir, "layout-base")}:base`, "bench/base:1");
    await push(registry, `${join(dir, "layout-multi")}:multi`, "bench/multi:1");
    const base = `${registry.host}/bench/base:1`;
    const multi = `${registry.host}/bench/multi:1`;
    const nsRoot = join(dir, "nsbox");
    const nsEnv = { ...ctx.env, NSBOX_ROOT: nsRoot, NSBOX_STATE: join(nsRoot, "state") };
    const nsbox = (args: string[]) => [ctx.opts.nsbox, `--root=${nsRoot}`, ...args];
    const podDir = join(dir, "podman");
    const podman = Bun.which("podman") ? (args: string[]) => podmanArgv(podDir, args) : undefined;
    const must = (argv: string[], env = ctx.env) => {
      const r = exec(wrapArgv(ctx.wrapper, argv), { env });
      if (r.code !== 0) throw new BenchError(`${argv.join(" ")} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split("\n").slice(-2).join(" ")}`);
    };

    // disk: the first image, then the second sharing its base (nsbox's layers are unpacked at first run)
    must(nsbox(["pull", "-q", base]), nsEnv);
    must(nsbox(["run", "--net", "none", "--cgroup-manager", "none", "--pull", "never", base, "/bin/true"]), nsEnv);
    const nsOne = du(join(nsRoot, "images"));
    must(nsbox(["pull", "-q", multi]), nsEnv);
    must(nsbox(["run", "--net", "none", "--cgroup-manager", "none", "--pull", "never", multi, "/bin/true"]), nsEnv);
    const nsTwo = du(join(nsRoot, "images"));
    let podOne: number | undefined;
    let podTwo: number | undefined;
    if (podman) {
      must(podman(["pull", "-q", "--tls-verify=false", `docker://${base}`]));
      podOne = du(join(podDir, "storage"));
      must(podman(["pull", "-q", "--tls-verify=false", `docker://${multi}`]));
      podTwo = du(join(podDir, "storage"));
    }

    // start-to-exit of run IMAGE /bin/true
    const cmds = [{ name: "nsbox", argv: nsbox(["run", "--net", "none", "--cgroup-manager", "none", "--pull", "never", base, "/bin/true"]) }];
    if (podman)
      cmds.push({
        name: "podman",
        argv: podman([
          "run",
          "--rm",
          "--network",
          "none",
          "--cgroups=disabled",
          "--ulimit",
          "nofile=1024:1024",
          "--ulimit",
          "nproc=4096:4096",
          base,
          "/bin/true",
        ]),
      });
    const lat = hyperfine({ ...ctx, env: nsEnv }, cmds);
    const n = lat.get("nsbox");
    const p = lat.get("podman");
    const notes = [
      `run IMAGE /bin/true, start to exit: nsbox ${n?.median.toFixed(1)} ms median (${n?.mean.toFixed(1)} ± ${n?.stddev.toFixed(1)})` +
        (p
          ? `; podman ${p.median.toFixed(1)} ms (${p.mean.toFixed(1)} ± ${p.stddev.toFixed(1)}); nsbox/podman ${((n?.median ?? 0) / p.median).toFixed(2)}`
          : "; podman: not measured (not installed)"),
      `disk, nsbox store (blobs + unpacked layers): base ${mb(nsOne)}, base + multi ${mb(nsTwo)} (the second image adds ${mb(nsTwo - nsOne)}: the base is stored once)`,
      podOne !== undefined && podTwo !== undefined
        ? `disk, podman overlay storage: base ${mb(podOne)}, base + multi ${mb(podTwo)} (adds ${mb(podTwo - podOne)})`
        : "disk, podman: not measured",
      "images: busybox (base: 1 layer; multi: base + 1 small layer), OCI layouts built offline, pushed with skopeo to docker-registry on 127.0.0.1, pulled by each",
      `commands: nsbox --root DIR run --net none --cgroup-manager none --pull never REF /bin/true | podman --root DIR ... --storage-driver overlay --runtime crun run --rm --network none --cgroups=disabled REF /bin/true (both through the bench's mount-namespace wrapper); du -s of ROOT/images and of podman's storage`,
    ];
    if (podman) exec(wrapArgv(ctx.wrapper, podman(["rmi", "-a", "-f"])), { env: ctx.env });
    return { title, tables: [], notes };
  } finally {
    await registry.stop();
  }
}
