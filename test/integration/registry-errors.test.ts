/**
 * Bad input from a registry: each is one line, exit 125, and nothing partial in
 * the store (no temp files, no unverified blob). Unknown names, digests that do
 * not match, a truncated layer, a connection cut mid-layer (retried with a Range
 * request, then given up), a config that is not JSON, and a full disk.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { isOneNsboxLine, NSBOX, useNsbox } from "../helpers/nsbox.ts";
import { missingTools, pushRaw, type Registry, type RegistryProxy, startProxy, startRegistry, storeBlobs, storeTemps } from "../helpers/registry.ts";

const ctx = useNsbox("registry-errors", { rootfs: false });
let reg: Registry;
let proxy: RegistryProxy;

const config = (n: number) =>
  new TextEncoder().encode(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: Array(n).fill(`sha256:${"0".repeat(64)}`) }, config: {} }),
  );
const digestOf = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;

/** An image of its own (a random layer), so that corrupting its blobs in the registry touches no other test. */
async function image(repo: string, layerBytes = 256 << 10): Promise<{ ref: string; layer: Uint8Array; layerDigest: string; manifestDigest: string }> {
  const layer = new Uint8Array(randomBytes(layerBytes));
  const manifestDigest = await pushRaw(reg, repo, "1", config(1), [layer]);
  return { ref: `${reg.host}/${repo}:1`, layer, layerDigest: digestOf(layer), manifestDigest };
}

/** The common shape of every failure here. */
function failedCleanly(r: { code: number; stderr: string }, re: RegExp) {
  expect(r.stderr).toMatch(re);
  expect(isOneNsboxLine(r.stderr)).toBe(true);
  expect(r.code).toBe(125);
  expect(storeTemps(ctx.dataRoot)).toEqual([]);
}

beforeAll(async () => {
  const missing = missingTools();
  if (missing.length) throw new Error(`missing ${missing.join(", ")}: run .ci/setup --test`);
  reg = await startRegistry(ctx.mkdir("registry"));
  proxy = startProxy(reg.host);
}, 60000);

afterAll(async () => {
  proxy?.stop();
  await reg?.stop();
});

describe("bad input from the registry", () => {
  test("an unknown repository or tag: the registry's 404, naming the reference", async () => {
    await image("known");
    const repo = await ctx.nsbox(["pull", `${reg.host}/nope/x:1`]);
    failedCleanly(repo, new RegExp(`^nsbox: ${reg.host}/nope/x:1 not found: ${reg.host} answered 404`));
    const tag = await ctx.nsbox(["pull", `${reg.host}/known:nope`]);
    failedCleanly(tag, new RegExp(`^nsbox: ${reg.host}/known:nope not found: ${reg.host} answered 404 .*MANIFEST_UNKNOWN`));
  });

  test("a layer whose bytes do not match its digest: refused, not stored", async () => {
    const img = await image("corrupt-layer");
    const file = reg.blobFile(img.layerDigest);
    const bytes = readFileSync(file);
    bytes[1000] = (bytes[1000] as number) ^ 0xff;
    writeFileSync(file, bytes);
    const r = await ctx.nsbox(["pull", img.ref]);
    failedCleanly(
      r,
      new RegExp(`layer 1 of ${reg.host}/corrupt-layer:1 \\(${img.layerDigest}\\): digest mismatch, the registry sent content that hashes to sha256:`),
    );
    expect(storeBlobs(ctx.dataRoot)).not.toContain(img.layerDigest.slice(7));
  });

  test("a manifest whose bytes do not match its digest, by tag and by digest", async () => {
    const img = await image("corrupt-manifest");
    const file = reg.blobFile(img.manifestDigest);
    writeFileSync(file, readFileSync(file, "utf8").replace('"schemaVersion":2', '"schemaVersion": 2'));
    const byTag = await ctx.nsbox(["pull", img.ref]);
    failedCleanly(byTag, /the manifest of .*corrupt-manifest:1: digest mismatch/);
    const byDigest = await ctx.nsbox(["pull", `${reg.host}/corrupt-manifest@${img.manifestDigest}`]);
    failedCleanly(byDigest, new RegExp(`corrupt-manifest@${img.manifestDigest}: digest mismatch, the registry sent content that hashes to sha256:`));
    expect(storeBlobs(ctx.dataRoot)).not.toContain(img.layerDigest.slice(7));
  });

  test("a truncated layer in the registry", async () => {
    const img = await image("truncated");
    truncateSync(reg.blobFile(img.layerDigest), 100000);
    const r = await ctx.nsbox(["pull", img.ref]);
    failedCleanly(r, new RegExp(`\\(${img.layerDigest}\\): truncated: the registry has only 100000 of ${img.layer.byteLength} bytes`));
    expect(storeBlobs(ctx.dataRoot)).not.toContain(img.layerDigest.slice(7));
  });

  test("a connection cut once mid-layer: resumed with a Range request", async () => {
    const img = await image("cut-once", 1 << 20);
    proxy.mode = { cutAfter: 300000, cutTimes: 1 };
    proxy.cuts = 0;
    proxy.ranges = [];
    const r = await ctx.nsbox(["pull", "-q", img.ref.replace(reg.host, proxy.host)]);
    proxy.mode = {};
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(proxy.cuts).toBe(1);
    expect(proxy.ranges).toEqual([`bytes=${300000}-`]);
    expect(storeBlobs(ctx.dataRoot)).toContain(img.layerDigest.slice(7));
  });

  test("a connection cut every time: retried, then one line", async () => {
    const img = await image("cut-always", 1 << 20);
    proxy.mode = { cutAfter: 200000 };
    proxy.cuts = 0;
    const r = await ctx.nsbox(["pull", img.ref.replace(reg.host, proxy.host)]);
    proxy.mode = {};
    failedCleanly(
      r,
      /: (the connection failed after \d+ of 1048576 bytes \([^)]+\)|truncated: the registry sent \d+ of 1048576 bytes); gave up after 3 retries$/m,
    );
    // the first try and three retries; each retry resumed where the last stopped
    expect(proxy.cuts).toBe(4);
    expect(storeBlobs(ctx.dataRoot)).not.toContain(img.layerDigest.slice(7));
  }, 30000);

  test("a redirect loop: stopped after 5 hops, one line", async () => {
    const img = await image("loop");
    proxy.mode = { redirectLoop: true };
    const r = await ctx.nsbox(["pull", img.ref.replace(reg.host, proxy.host)]);
    proxy.mode = {};
    failedCleanly(r, new RegExp(`^nsbox: ${proxy.host}/loop:1 \\(${proxy.host}\\): more than 5 redirects for /v2/loop/blobs/sha256:[a-f0-9]{64}\n$`));
  });

  test("an image config that is not JSON: refused before any layer is fetched", async () => {
    const layer = new Uint8Array(randomBytes(4096));
    await pushRaw(reg, "badconfig", "1", new TextEncoder().encode("this is not JSON"), [layer]);
    const r = await ctx.nsbox(["pull", `${reg.host}/badconfig:1`]);
    failedCleanly(r, new RegExp(`the image config of ${reg.host}/badconfig:1 \\(sha256:[a-f0-9]{64}\\) is not JSON`));
    expect(storeBlobs(ctx.dataRoot)).not.toContain(digestOf(layer).slice(7));
  });

  test("a full disk (ENOSPC while writing a blob): stated, the partial blob removed", async () => {
    const img = await image("big-for-tmpfs", 2 << 20);
    const root = ctx.mkdir("small-root");
    // the tmpfs exists only in this private mount namespace: the host's mounts are untouched
    const script = `mount -t tmpfs -o size=1m nsbox-test-enospc "$1" || exit 99
"$2" --root "$1" pull "$3"; rc=$?
echo "tmp:$(ls -A "$1/images/tmp" | tr '\\n' ' ')"
echo "blobs:$(ls -A "$1/images/blobs/sha256" | tr '\\n' ' ')"
exit $rc`;
    const p = Bun.spawn(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", root, NSBOX, img.ref], {
      env: ctx.env(),
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
    expect(err).toMatch(
      /^nsbox: no space left on the device of .* while writing blob sha256:[a-f0-9]{64}: the partial blob was removed; free space and try again\n$/,
    );
    expect(code).toBe(125);
    expect(out).toContain("tmp:\n");
    expect(out).not.toContain(img.layerDigest.slice(7));
  });
});
