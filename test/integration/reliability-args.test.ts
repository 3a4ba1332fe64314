/**
 * Argument handling found by a hostile run (issue 10, point 5): missing and extra
 * positionals, state and data roots that are not usable directories, and control
 * characters in values. Every case: exit 125, one "nsbox: " line on stderr, and
 * never a raw control byte (C0, DEL, C1: ESC sequences, newlines) in it.
 */
import { describe, expect, test } from "bun:test";
import { isOneNsboxLine, type RunOptions, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("rel-args");

/** Any control character but the final newline. */
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

async function refused(args: string[], mention: RegExp, opts?: RunOptions) {
  const r = await ctx.nsbox(args, opts);
  expect({ args, code: r.code, stdout: r.stdout, oneLine: isOneNsboxLine(r.stderr), controls: CONTROL.test(r.stderr), stderr: r.stderr }).toEqual({
    args,
    code: 125,
    stdout: "",
    oneLine: true,
    controls: false,
    stderr: expect.stringMatching(mention),
  });
}

describe("missing arguments", () => {
  test("inspect with no container says one is required (it printed [] and exited 0)", async () => {
    await refused(["inspect"], /a container is required/);
  });

  test.each([
    [["stop"], /a container is required/],
    [["kill"], /a container is required/],
    [["rm", "-f"], /a container is required/],
    [["wait"], /a container is required/],
    [["logs"], /a container is required/],
    [["ns"], /a container is required/],
    [["pod"], /an action is required/],
    [["pod", "inspect"], /a pod is required/],
    [["pod", "stop"], /a pod is required/],
    [["pod", "rm", "-f"], /a pod is required/],
    [["network"], /an action is required/],
  ])("%p", async (args, mention) => {
    await refused(args as string[], mention as RegExp);
  });
});

describe("extra arguments are refused by every verb that takes none", () => {
  test.each([
    [["pod", "ls", "0-1"]],
    [["pod", "ps", "x"]],
    [["pod", "create", "x"]],
    [["ps", "x"]],
    [["network", "ls", "x"]],
    [["network", "prune", "x"]],
    [["logs", "a", "b"]],
    [["ns", "a", "b", "c"]],
    [["cleanup", "a", "b"]],
    [["rootfs", "busybox", "d", "x"]],
  ])("%p", async (args) => {
    await refused(args, /too many arguments/);
  });
});

describe("a pod action refuses the flags of other actions (they were ignored silently)", () => {
  test.each([
    [["pod", "ps", "--time", "3"], /--time is not a flag of "nsbox pod ps": it is for "nsbox pod stop"/],
    [["pod", "stop", "x", "--force"], /--force is not a flag of "nsbox pod stop": it is for "nsbox pod rm"/],
    [["pod", "rm", "x", "-p", "8080:80"], /--publish is not a flag of "nsbox pod rm": it is for "nsbox pod create"/],
    [["pod", "create", "--format", "json"], /--format is not a flag of "nsbox pod create"/],
  ])("%p", async (args, mention) => {
    await refused(args as string[], mention as RegExp);
  });
});

describe("state and data roots must be usable directories", () => {
  test("--state /dev/null (a device, not a directory)", async () => {
    await refused(["--state", "/dev/null", "ps"], /--state \/dev\/null is not a directory/);
  });
  test("--root /proc (procfs holds no files of ours)", async () => {
    await refused(["--root", "/proc", "ps"], /--root \/proc is on a proc filesystem/, { env: { NSBOX_STATE: undefined } });
  });
  test("--state below a file", async () => {
    await refused(["--state", "/dev/null/run", "ps"], /--state \/dev\/null\/run cannot be created: \/dev\/null is not a directory/);
  });
  test("NSBOX_STATE=/sys/kernel is named as the variable", async () => {
    await refused(["ps"], /NSBOX_STATE \/sys\/kernel is on a sysfs filesystem/, { env: { NSBOX_STATE: "/sys/kernel" } });
  });
  test("a root that does not exist yet is fine (nsbox creates it)", async () => {
    const r = await ctx.nsbox(["ps"], { env: { NSBOX_STATE: `${ctx.tmp}/new-state/deeper` } });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
  });
});

describe("control characters", () => {
  const ESC = "\x1b[31m";
  test.each([
    [["run", "--hostname", `a${ESC}b`, "ROOTFS", "true"], /invalid --hostname "a\\x1b\[31mb"/],
    [["run", "--name", "a\nb", "ROOTFS", "true"], /invalid --name "a\\nb"/],
    [["run", "-e", "A\x07B=1", "ROOTFS", "true"], /invalid --env "A\\x07B=1"/],
    [["pod", "create", "--name", "p\x1b]0;owned\x07"], /invalid --name "p\\x1b\]0;owned\\x07"/],
    [["pod", "create", "--hostname", "h\x7f"], /invalid --hostname "h\\x7f"/],
    [["inspect", `${ESC}red`], /no such container: \\x1b\[31mred/],
    [["ps", `--bogus\u009bx`], /unknown flag --bogus\\x9bx/],
    [["logs", "\r\n"], /no such container: \\r\\n/],
  ])("%p", async (args, mention) => {
    await refused(
      (args as string[]).map((a) => (a === "ROOTFS" ? ctx.rootfs : a)),
      mention as RegExp,
    );
  });
});
