/**
 * Images for the tests, made offline: layer tars by GNU tar from staging
 * directories, OCI image layouts written here (blobs, config, manifest, index),
 * and a podman of the test's own (storage, run root and temporary files in the
 * test's directory; no cgroups, no network, no events) for interop.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const sha256 = (data: Uint8Array | string) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

export function sh(cmd: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd[0] as string, cmd.slice(1), { cwd: opts.cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} -> exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** A tar of a staging directory, numeric owners and hard links kept (GNU tar). */
export function tarOf(stage: string, out: string): string {
  sh(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", stage, "-cf", out, "."]);
  return out;
}

export interface LayoutImage {
  /** layer tars, bottom first; gzip: store the blob gzip-compressed */
  layers: { tar: string; gzip?: boolean }[];
  config?: Record<string, unknown>;
  /** the org.opencontainers.image.ref.name annotation */
  name?: string;
  /** write these bytes as the config blob instead of the JSON (for bad-input tests) */
  rawConfig?: string;
}

/** Writes an OCI image layout with one image; returns the manifest digest. */
export function writeLayout(dir: string, img: LayoutImage): string {
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  const put = (data: Uint8Array | string) => {
    const d = sha256(data);
    writeFileSync(join(dir, "blobs", "sha256", d.slice(7)), data);
    return { digest: d, size: typeof data === "string" ? Buffer.byteLength(data) : data.length };
  };
  const diffIds: string[] = [];
  const layers = img.layers.map((l) => {
    const tar = readFileSync(l.tar);
    diffIds.push(sha256(tar));
    const blob = l.gzip ? Bun.gzipSync(tar) : tar;
    return { mediaType: `application/vnd.oci.image.layer.v1.tar${l.gzip ? "+gzip" : ""}`, ...put(blob) };
  });
  const config =
    img.rawConfig ??
    JSON.stringify({
      architecture: process.arch === "x64" ? "amd64" : process.arch,
      os: "linux",
      created: "2026-01-01T00:00:00Z",
      config: img.config ?? {},
      rootfs: { type: "layers", diff_ids: diffIds },
    });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...put(config) },
    layers,
  });
  const m = put(manifest);
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...m,
          ...(img.name ? { annotations: { "org.opencontainers.image.ref.name": img.name } } : {}),
        },
      ],
    }),
  );
  return m.digest;
}

/** What is in the image store (ROOT/images): blobs, layers, records, temporaries. */
export function storeContents(dataRoot: string): { blobs: string[]; layers: string[]; images: string[]; tmp: string[] } {
  const l = (p: string) => {
    try {
      return readdirSync(join(dataRoot, "images", p)).sort();
    } catch {
      return [];
    }
  };
  return { blobs: l("blobs/sha256"), layers: l("layers"), images: l("images"), tmp: l("tmp") };
}

/**
 * podman with everything in dir: vfs storage, no cgroups (crun refuses this
 * hybrid host's cgroups otherwise), no events. Its commands run in a private
 * mount namespace without the cgroup2 mount at /sys/fs/cgroup/unified, as crun
 * needs on a hybrid host (the host's mounts are untouched).
 */
export function podman(dir: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const flags = ["--root", join(dir, "storage"), "--runroot", join(dir, "run"), "--tmpdir", join(dir, "tmp")];
  flags.push("--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none");
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const unified = readFileSync("/proc/self/mountinfo", "utf8").includes(" /sys/fs/cgroup/unified ");
  const script = `${unified ? "umount /sys/fs/cgroup/unified && " : ""}exec podman ${[...flags, ...args].map(q).join(" ")}`;
  const r = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], { encoding: "utf8", timeout: 120000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** podman run flags for this host: no network, no cgroups, rlimits it may set. */
export const PODMAN_RUN = ["--network", "none", "--cgroups=disabled", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"];
