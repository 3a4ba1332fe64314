/**
 * src/posixpath.ts against node:path (posix), on paths of every shape nsbox
 * meets: absolute and relative, repeated and trailing slashes, `.` and `..`
 * above the root, empty parts.
 */
import { describe, expect, test } from "bun:test";
import * as node from "node:path";
import { basename, dirname, isAbsolute, join, normalize, resolve } from "../../src/posixpath.ts";

const paths = [
  "",
  ".",
  "..",
  "/",
  "//",
  "///",
  "a",
  "a/",
  "a//",
  "/a",
  "//a",
  "///a",
  "/a/",
  "/a//",
  "a/b",
  "a/b/",
  "/a/b/c",
  "/a/./b",
  "/a/../b",
  "/../a",
  "../a",
  "../../a/..",
  "a/../..",
  "a/../../b/",
  "./a",
  "./",
  ".a",
  "..a",
  "a..",
  "/a/b/../../..",
  "/a/b/../../../c/",
  "a/./../.",
  "/sys/fs/cgroup/memory",
  "run/nsbox/x/",
  " /a",
  "a b/c d",
  "/a/b.c",
  "/a/.b",
  "/a/..b/",
  "/.",
  "/..",
  "/./",
  "/../",
  "a/.",
  "a/..",
  "./..",
  "../..",
  "/a/b//c/../d",
];

describe("src/posixpath.ts gives node:path's results", () => {
  test("normalize", () => {
    for (const p of paths) expect([p, normalize(p)]).toEqual([p, node.posix.normalize(p)]);
  });
  test("dirname, basename, isAbsolute", () => {
    for (const p of paths) {
      expect([p, dirname(p)]).toEqual([p, node.posix.dirname(p)]);
      expect([p, basename(p)]).toEqual([p, node.posix.basename(p)]);
      expect([p, isAbsolute(p)]).toEqual([p, node.posix.isAbsolute(p)]);
    }
  });
  test("join of one, two and three parts", () => {
    expect(join()).toBe(node.posix.join());
    for (const a of paths) {
      expect([a, join(a)]).toEqual([a, node.posix.join(a)]);
      for (const b of paths) expect([a, b, join(a, b)]).toEqual([a, b, node.posix.join(a, b)]);
    }
    for (const a of ["/a", "", "x/"]) for (const b of ["", "..", "b"]) for (const c of paths) expect(join(a, b, c)).toBe(node.posix.join(a, b, c));
  });
  test("resolve, relative parts taken from the current directory", () => {
    expect(resolve()).toBe(node.posix.resolve());
    for (const a of paths) {
      expect([a, resolve(a)]).toEqual([a, node.posix.resolve(a)]);
      for (const b of paths) expect([a, b, resolve(a, b)]).toEqual([a, b, node.posix.resolve(a, b)]);
    }
  });
});
