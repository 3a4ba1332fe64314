/**
 * Bad input to `image import` (and so to unpacking): each is one line, exit 125,
 * and nothing left in the store: no blob, layer, record or temporary file.
 */
import { describe, expect, test } from "bun:test";
import { closeSync, openSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TarWriter } from "../../src/image/tarwriter.ts";
import { storeContents, tarOf, writeLayout } from "../helpers/images.ts";
import { isOneNsboxLine, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("image-errors", { rootfs: false });

/** a layer tar with one file */
function smallLayer(name: string): string {
  const dir = ctx.mkdir(`stage-${name}`);
  writeFileSync(join(dir, "file"), "content\n");
  return tarOf(dir, join(ctx.tmp, `${name}.tar`));
}

const EMPTY = { blobs: [], layers: [], images: [], tmp: [] };

async function refused(source: string, message: RegExp, name = "bad/image:1") {
  const r = await ctx.nsbox(["image", "import", source, name]);
  expect(r.code).toBe(125);
  expect(isOneNsboxLine(r.stderr)).toBe(true);
  expect(r.stderr).toMatch(message);
  expect(r.stdout).toBe("");
  expect(storeContents(ctx.dataRoot)).toEqual(EMPTY);
}

describe("image import refuses bad input and leaves nothing behind", () => {
  test("a file that is not an archive", async () => {
    const junk = join(ctx.tmp, "junk.tar");
    writeFileSync(junk, Buffer.alloc(3000, 0x41));
    await refused(junk, /^nsbox: cannot import ".*junk\.tar": not a readable image archive: /);
  });

  test("a truncated archive", async () => {
    const layout = ctx.mkdir("layout-trunc");
    writeLayout(layout, { layers: [{ tar: smallLayer("trunc") }] });
    const file = join(ctx.tmp, "trunc.tar");
    const { execFileSync } = await import("node:child_process");
    execFileSync("tar", ["-C", layout, "-cf", file, "."]);
    truncateSync(file, Math.floor(readFileSync(file).length / 2));
    await refused(file, /^nsbox: cannot import ".*trunc\.tar": not a readable image archive: .*(truncated|ends|end)/i);
  });

  test.each([
    ["", /^nsbox: invalid image reference "": it is empty/],
    ["Upper:1", /^nsbox: invalid image reference "Upper:1": the repository name must be lowercase/],
  ])("the NAME %p (it was stored as given) is refused before the archive is read", async (name, message) => {
    const layout = ctx.mkdir(`layout-name-${name.length}`);
    writeLayout(layout, { layers: [{ tar: smallLayer(`name${name.length}`) }] });
    await refused(layout, message as RegExp, name as string);
  });

  test("a directory that is no image layout", async () => {
    await refused(ctx.mkdir("empty-dir"), /holds neither manifest\.json \(docker-archive\) nor index\.json \(OCI layout\)/);
  });

  test("a layer with an unsafe entry (the extractor's refusal, naming the entry)", async () => {
    const bad = join(ctx.tmp, "evil.tar");
    const fd = openSync(bad, "w");
    const w = new TarWriter(fd);
    w.entry({ name: "../evil", type: "0", mode: 0o644, size: 0 });
    w.end();
    closeSync(fd);
    const layout = ctx.mkdir("layout-evil");
    writeLayout(layout, { layers: [{ tar: smallLayer("ok") }, { tar: bad }] });
    await refused(layout, /^nsbox: cannot unpack layer sha256:[0-9a-f]{64}: refusing entry "\.\.\/evil"/);
  });

  test("an image config that is not JSON", async () => {
    const layout = ctx.mkdir("layout-config");
    writeLayout(layout, { layers: [{ tar: smallLayer("cfg") }], rawConfig: "{not json" });
    await refused(layout, /^nsbox: the image config sha256:[0-9a-f]{64} is not valid JSON/);
  });

  test("a blob whose content does not match its digest", async () => {
    const layout = ctx.mkdir("layout-digest");
    writeLayout(layout, { layers: [{ tar: smallLayer("dig") }] });
    const blobs = join(layout, "blobs/sha256");
    // the biggest blob is the layer: change one byte, keep the size
    const layer = readdirSync(blobs).sort((a, b) => readFileSync(join(blobs, b)).length - readFileSync(join(blobs, a)).length)[0] as string;
    const bytes = readFileSync(join(blobs, layer));
    bytes[600] = (bytes[600] as number) ^ 1;
    writeFileSync(join(blobs, layer), bytes);
    await refused(layout, new RegExp(`blob sha256:${layer} does not match its digest \\(its content hashes to sha256:[0-9a-f]{64}\\): the source is corrupt`));
  });

  test("a blob missing from the layout", async () => {
    const layout = ctx.mkdir("layout-missing");
    const tar = smallLayer("miss");
    writeLayout(layout, { layers: [{ tar }] });
    const { createHash } = await import("node:crypto");
    const hex = createHash("sha256").update(readFileSync(tar)).digest("hex");
    const { rmSync } = await import("node:fs");
    rmSync(join(layout, "blobs/sha256", hex));
    await refused(layout, new RegExp(`blob sha256:${hex} is missing from the archive`));
  });

  test("a full disk: the partial blob is removed and the error says so", async () => {
    // a 1 MiB tmpfs as the data root, mounted in a mount namespace of this test only
    const small = ctx.mkdir("small-root");
    const stage = ctx.mkdir("stage-big");
    writeFileSync(join(stage, "big"), Buffer.alloc(3 << 20, 7));
    const layout = ctx.mkdir("layout-big");
    writeLayout(layout, { layers: [{ tar: tarOf(stage, join(ctx.tmp, "big.tar")) }] });
    const script = `mount -t tmpfs -o size=1m tmpfs "$1" && "$2" image import "$3" big:1; echo "rc=$?"; echo "left=$(ls -A "$1/images/tmp" "$1/images/blobs/sha256" | grep -v ':$' | grep -c .)"`;
    const { spawnSync } = await import("node:child_process");
    const { NSBOX } = await import("../helpers/nsbox.ts");
    const r = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", script, "sh", small, NSBOX, layout], {
      encoding: "utf8",
      env: ctx.env({ NSBOX_ROOT: small, NSBOX_STATE: join(small, "run") }),
    });
    expect(r.stdout).toBe("rc=125\nleft=0\n");
    expect(r.stderr).toMatch(
      /^nsbox: cannot import ".*layout-big": no space left on the device of .* while writing blob sha256:[0-9a-f]{64}: the partial blob was removed; free space and try again\n$/,
    );
  });
});

describe("image commands: one clear line and exit 125", () => {
  test.each([
    [["image", "rm", "no/such:1"], /^nsbox: no image "no\/such:1" in the store \(see: nsbox image ls; get it with nsbox pull or nsbox image import\)\n$/],
    [["image", "save", "no/such:1"], /^nsbox: "nsbox image save" needs -o FILE: the archive to write\n$/],
    [["image", "frobnicate"], /^nsbox: unknown image action "frobnicate": use ls, inspect/],
    [["image", "tag", "no/such:1", "x:1"], /^nsbox: no image "no\/such:1"/],
    [["image", "ls", "--format", "yaml"], /^nsbox: unsupported --format "yaml": use table or json\n$/],
    [["image", "import", "/nonexistent/archive.tar"], /^nsbox: cannot import "\/nonexistent\/archive\.tar": no such file or directory/],
    [["image", "inspect", "Bad Name"], /^nsbox: invalid image name "Bad Name"|^nsbox: no image "Bad Name"/],
  ])("%p", async (args, message) => {
    const r = await ctx.nsbox(args as string[]);
    expect(r.code).toBe(125);
    expect(isOneNsboxLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(message as RegExp);
  });

  test("--help on each action shows that action's flags", async () => {
    const r = await ctx.nsbox(["image", "save", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--format");
    expect(r.stdout).toContain("docker-archive");
  });
});
