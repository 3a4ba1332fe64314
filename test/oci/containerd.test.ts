/**
 * containerd 1.6 with its runc shim (io.containerd.runc.v2) driving an OCI
 * runtime given by `ctr run --runc-binary`: nsbox by default, or each of
 * OCI_RUNTIMES=crun,runc,nsbox. containerd is the test's own (see
 * test/helpers/oci-containerd.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Containerd, CTR_IMAGE } from "../helpers/oci-containerd.ts";
import { busyboxRootfs, nsboxPath, testRuntimes, waitFor } from "../helpers/oci-podman.ts";

const missing = ["containerd", "ctr", "containerd-shim-runc-v2"].filter((t) => !Bun.which(t));
if (missing.length) console.log(`containerd tests skipped: ${missing.join(", ")} not installed (.ci/setup --test installs containerd)`);

describe.skipIf(missing.length > 0)("containerd", () => {
  let c: Containerd;
  let rootfs: { dir: string; cleanup: () => void } | undefined;

  beforeAll(async () => {
    c = new Containerd();
    rootfs = busyboxRootfs(nsboxPath());
    await c.start();
    await c.importRootfs(rootfs.dir);
  });

  afterAll(async () => {
    const left = await c.stop();
    rootfs?.cleanup();
    expect(left).toEqual([]);
  });

  test("the image was imported", async () => {
    expect(await c.ok(["image", "ls", "-q"])).toContain(CTR_IMAGE);
  });

  for (const rt of testRuntimes()) {
    const runtime = ["--runc-binary", rt.path];

    test(`${rt.name}: ctr run --rm: output and exit code`, async () => {
      const id = `ocitest-run-${rt.name}`;
      const r = await c.ctr(["run", "--rm", ...runtime, CTR_IMAGE, id, "sh", "-c", "echo hello as pid $$ in $(ls /sys/class/net); exit 3"]);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 3, stdout: "hello as pid 1 in lo\n", stderr: "" });
      expect((await c.ok(["container", "ls", "-q"])).trim()).toBe("");
    });

    test(`${rt.name}: ctr run -t: a terminal through the shim's console socket`, async () => {
      const id = `ocitest-tty-${rt.name}`;
      // ctr -t wants a terminal on its own stdin: script gives it one. The shell
      // stays until it has read its input (a command that exits at once can lose its
      // output between the shim and ctr, with crun and runc alike).
      const inner = c
        .ctrArgv(["run", "--rm", "-t", ...runtime, CTR_IMAGE, id, "sh"])
        .map(shq)
        .join(" ");
      const proc = Bun.spawn(["script", "-qec", `stty rows 30 cols 100; ${inner}`, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
      // (no `stty size` here: under ctr it fails now and then, with crun and runc too; podman's tmux test checks the size)
      proc.stdin.write("echo tty=$(tty); exit 5\n");
      proc.stdin.flush();
      const timer = setTimeout(() => proc.kill("SIGKILL"), 30000);
      const out = await new Response(proc.stdout).text();
      await proc.exited;
      clearTimeout(timer);
      expect(out.replace(/\r/g, "")).toMatch(/^tty=\/dev\/(pts\/\d+|console)$/m);
      expect(proc.exitCode).toBe(5);
    });

    test(`${rt.name}: ctr run -d, task exec, kill, delete`, async () => {
      const id = `ocitest-exec-${rt.name}`;
      await c.ok(["run", "-d", ...runtime, CTR_IMAGE, id, "sleep", "1000"]);
      try {
        expect(await waitFor(async () => /RUNNING/.test((await c.ctr(["task", "ls"])).stdout))).toBe(true);
        const e = await c.ctr(["task", "exec", "--exec-id", "e1", id, "sh", "-c", "echo exec in $(cat /proc/1/comm); exit 4"]);
        expect({ code: e.code, stdout: e.stdout }).toEqual({ code: 4, stdout: "exec in sleep\n" });
        const ps = await c.ok(["task", "ps", id]);
        expect(ps.trim().split("\n").length).toBeGreaterThanOrEqual(2);
        await c.ok(["task", "kill", "-s", "SIGKILL", id]);
        expect(await waitFor(async () => /STOPPED/.test((await c.ctr(["task", "ls"])).stdout))).toBe(true);
        await c.ok(["task", "rm", id]);
      } finally {
        await c.ctr(["task", "rm", "-f", id]);
        await c.ctr(["container", "rm", id]);
      }
      expect((await c.ok(["container", "ls", "-q"])).trim()).toBe("");
    });
  }
});

function shq(word: string): string {
  return /^[A-Za-z0-9_./=:@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
