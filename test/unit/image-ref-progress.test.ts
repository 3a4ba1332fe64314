/** What `nsbox pull` prints while it works: lines when not on a terminal, rows redrawn in place on one. */
import { afterAll, expect, test } from "bun:test";
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { humanBytes, makeProgress } from "../../src/image/progress.ts";
import { parseReference } from "../../src/image/reference.ts";
import type { Descriptor } from "../../src/image/registry/manifest.ts";
import { removeTempDirs, tempDir } from "../helpers/tmp.ts";

afterAll(removeTempDirs);

const layer = (c: string, size: number): Descriptor => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: `sha256:${c.repeat(64)}`, size });

function capture(mode: "tty" | "lines" | "quiet", rows = 24, layers = [layer("a", 2000), layer("b", 10)]): string {
  const file = join(tempDir("nsbox-progress-"), "out");
  const fd = openSync(file, "w");
  const p = makeProgress(fd, mode, rows);
  p.resolved?.(parseReference("alpine:3.20"), layers);
  p.layerDone?.(layers[1] as Descriptor, true);
  p.layerStart?.(layers[0] as Descriptor);
  p.layerBytes?.(layers[0] as Descriptor, 1000);
  p.layerDone?.(layers[0] as Descriptor, false);
  p.finish?.();
  closeSync(fd);
  return readFileSync(file, "utf8");
}

test("not a terminal: one line per finished layer", () => {
  const out = capture("lines");
  expect(out.split("\n").filter(Boolean)).toEqual([
    "pulling alpine:3.20 (2 layers)",
    "bbbbbbbbbbbb: already exists",
    expect.stringMatching(/^aaaaaaaaaaaa: pulled 2.00 kB in \d+\.\d s \(.*\/s\)$/),
  ]);
  expect(out).not.toContain("\x1b");
});

test("a terminal: every layer a row, redrawn in place", () => {
  const out = capture("tty");
  expect(out).toContain("\x1b[2A");
  expect(out).toContain("aaaaaaaaaaaa: waiting");
  expect(out).toContain("aaaaaaaaaaaa: downloading");
  expect(out.endsWith("\n")).toBe(true);
});

test("more layers than the terminal has rows: lines", () => {
  expect(capture("tty", 3)).not.toContain("\x1b");
});

test("-q: nothing", () => {
  expect(capture("quiet")).toBe("");
});

test("sizes as docker shows them", () => {
  expect(humanBytes(0)).toBe("0 B");
  expect(humanBytes(999)).toBe("999 B");
  expect(humanBytes(1090000)).toBe("1.09 MB");
  expect(humanBytes(123456789)).toBe("123.5 MB");
});
