/**
 * Section "images": pulling an image from a registry on this machine.
 *
 * A ~100 MB image (3 layers of 32 MiB of random data, gzip'd by umoci: nothing
 * compresses, as a worst case) is built offline with umoci, pushed with skopeo
 * into docker-registry on 127.0.0.1 (a temp storage dir), then pulled, each
 * run into an empty store, by:
 *   nsbox pull                  (blobs verified and stored; layers unpacked at first run)
 *   podman pull                 (its own --root/--runroot in the temp dir; unpacks at pull)
 *   skopeo copy docker://... oci:DIR  (blobs only, as nsbox)
 * Every contender runs through the bench's wrapper (a private mount namespace:
 * podman's overlay mounts stay there). Runs alternate between contenders.
 * Target: nsbox at or below podman's median.
 *
 * The `run IMAGE` timing and the disk shared by two images are measured by the
 * image store's section (hooks: IMAGE_REF and the registry below are what it needs).
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { addRandomImage, push, type Registry, startRegistry, umoci } from "../test/helpers/registry.ts";
import { type BenchContext, BenchError, exec, median, type SectionResult, wrapArgv } from "./lib.ts";

export const title = "pull of a ~100 MB, 3-layer image from a local registry (seconds, median)";

const LAYERS = 3;
const LAYER_MIB = 32;
const REPO_TAG = "bench/random:1";

/** The registry and the image pulled, for other sections that want an image to run. */
export interface PullFixture {
  registry: Registry;
  /** HOST/bench/random:1 */
  ref: string;
}

/** Builds the image and starts the registry holding it (stop it with fixture.registry.stop()). */
export async function pullFixture(ctx: BenchContext): Promise<PullFixture> {
  const missing = ["docker-registry", "skopeo", "umoci"].filter((t) => !Bun.which(t));
  if (missing.length) throw new BenchError(`${missing.join(", ")} not installed (sudo .ci/setup --bench)`);
  const dir = join(ctx.tmp, "images");
  mkdirSync(dir, { recursive: true });
  const layout = join(dir, "layout");
  umoci(["init", "--layout", layout]);
  addRandomImage(layout, "random", LAYERS, LAYER_MIB, join(dir, "work"));
  const registry = await startRegistry(join(dir, "registry"));
  try {
    await push(registry, `${layout}:random`, REPO_TAG);
  } catch (e) {
    await registry.stop();
    throw new BenchError(`skopeo could not push the bench image: ${(e as Error).message}`);
  }
  rmSync(layout, { recursive: true, force: true });
  return { registry, ref: `${registry.host}/${REPO_TAG}` };
}

interface Contender {
  name: string;
  argv(dir: string): string[];
  version: string;
}

function contenders(ctx: BenchContext, ref: string): Contender[] {
  const list: Contender[] = [{ name: "nsbox pull", argv: (d) => [ctx.opts.nsbox, `--root=${d}`, "pull", "-q", ref], version: "" }];
  if (Bun.which("podman"))
    list.push({
      name: "podman pull",
      argv: (d) => [
        "podman",
        "--root",
        join(d, "storage"),
        "--runroot",
        join(d, "run"),
        "--tmpdir",
        join(d, "tmp"),
        "--storage-driver",
        "overlay",
        "--events-backend",
        "none",
        "pull",
        "-q",
        "--tls-verify=false",
        `docker://${ref}`,
      ],
      version: exec(["podman", "--version"]).stdout.trim(),
    });
  list.push({
    name: "skopeo copy",
    argv: (d) => ["skopeo", "copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `oci:${join(d, "oci")}:x`],
    version: exec(["skopeo", "--version"]).stdout.trim(),
  });
  return list;
}

export async function run(ctx: BenchContext): Promise<SectionResult> {
  const fixture = await pullFixture(ctx);
  try {
    const all = contenders(ctx, fixture.ref);
    const runs = Math.max(3, Math.min(ctx.opts.runs, 7));
    const times = new Map<string, number[]>(all.map((c) => [c.name, []]));
    // one untimed pull each first (page cache, registry warm), then the runs, interleaved
    for (let round = -1; round < runs; round++) {
      for (const [i, c] of all.entries()) {
        const dir = join(ctx.tmp, "pulls", `${i}-${round + 1}`);
        mkdirSync(dir, { recursive: true });
        const argv = wrapArgv(ctx.wrapper, c.argv(dir));
        const t0 = performance.now();
        const r = exec(argv, { env: { ...ctx.env, NSBOX_ROOT: dir, NSBOX_STATE: join(dir, "state") } });
        const s = (performance.now() - t0) / 1000;
        if (r.code !== 0) throw new BenchError(`${c.name} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split("\n").slice(-2).join(" ")}`);
        if (round >= 0) times.get(c.name)?.push(s);
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const nsbox = median(times.get("nsbox pull") ?? []);
    const podman = times.has("podman pull") ? median(times.get("podman pull") ?? []) : undefined;
    const mb = (LAYERS * LAYER_MIB * 1048576) / 1e6;
    const notes = all.map((c) => {
      const m = median(times.get(c.name) ?? []);
      const ratio = c.name === "nsbox pull" ? "" : `, nsbox/${c.name.split(" ")[0]} ${(nsbox / m).toFixed(2)}`;
      return `${c.name}: ${m.toFixed(2)} s median of ${runs} (${(mb / m).toFixed(0)} MB/s${ratio})${c.version ? ` [${c.version}]` : ""}`;
    });
    notes.push(
      podman === undefined
        ? "podman: not measured (not installed: apt-get install -y podman)"
        : `target: nsbox at or below podman's median: ${nsbox <= podman ? "met" : "NOT met"}`,
      `image: ${LAYERS} layers of ${LAYER_MIB} MiB random data (${mb.toFixed(0)} MB), from docker-registry on ${fixture.registry.host}; each run into an empty store`,
      "podman also unpacks the layers into its overlay storage at pull; nsbox and skopeo store the verified blobs (nsbox unpacks a layer once, at its first run)",
      `commands: nsbox --root DIR pull -q REF | podman --root DIR ... pull -q --tls-verify=false docker://REF | skopeo copy --src-tls-verify=false docker://REF oci:DIR:x`,
    );
    return { title, tables: [], notes };
  } finally {
    await fixture.registry.stop();
  }
}
