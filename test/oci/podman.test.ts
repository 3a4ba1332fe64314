/**
 * podman 4 driving an OCI runtime through conmon: nsbox by default, or every
 * runtime in OCI_RUNTIMES=crun,runc,nsbox (crun and runc prove the harness).
 * See test/helpers/oci-podman.ts for how podman is kept off the host's state.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { busyboxRootfs, IMAGE, nsboxPath, Podman, RUN_FLAGS, testRuntimes, waitFor } from "../helpers/oci-podman.ts";

const missing = ["podman", "conmon", "tmux"].filter((t) => !Bun.which(t));
if (missing.length) console.log(`podman tests skipped: ${missing.join(", ")} not installed (.ci/setup --test installs them)`);

/** The v1 (or v2) cgroup file of a host pid, read from the host's side. */
function cgroupFile(pid: number, controller: string, file: string): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n");
  const v1 = lines.map((l) => l.split(":")).find((f) => f[1]?.split(",").includes(controller));
  const path = v1
    ? join("/sys/fs/cgroup", controller, v1.slice(2).join(":"), file)
    : join("/sys/fs/cgroup", (lines.find((l) => l.startsWith("0::")) ?? "0::/").slice(3), file);
  return readFileSync(path, "utf8").trim();
}

for (const rt of testRuntimes()) {
  describe.skipIf(missing.length > 0)(`podman --runtime ${rt.name}`, () => {
    let p: Podman;
    let rootfs: { dir: string; cleanup: () => void };

    beforeAll(async () => {
      p = new Podman(rt.name);
      rootfs = busyboxRootfs(nsboxPath());
      await p.setup(rootfs.dir);
    });

    afterAll(async () => {
      const left = await p.teardown();
      rootfs?.cleanup();
      expect(left).toEqual([]);
    });

    test("run --rm: output and exit codes", async () => {
      const r = await p.run(["run", "--rm", ...RUN_FLAGS, IMAGE, "echo", "hello from", rt.name]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe(`hello from ${rt.name}\n`);
      expect(r.code).toBe(0);
      const seven = await p.run(["run", "--rm", ...RUN_FLAGS, IMAGE, "sh", "-c", "exit 7"]);
      // (stderr too: a failure then says why, which a bare exit code did not)
      expect({ code: seven.code, stderr: seven.stderr }).toEqual({ code: 7, stderr: "" });
      // a command that does not exist: podman says so and exits 127, as with crun and runc
      const none = await p.run(["run", "--rm", ...RUN_FLAGS, IMAGE, "/no/such/command"]);
      expect(none.code).toBe(127);
      expect(none.stderr).toMatch(/no\/such\/command/);
      // nothing is left: --rm removed the containers (this test runs first)
      expect((await p.ok(["ps", "-a", "-q"])).trim()).toBe("");
    });

    test("run: user, workdir, env, hostname, dropped capability, a command that cannot run", async () => {
      const r = await p.run([
        "run",
        "--rm",
        ...RUN_FLAGS,
        "--user",
        "1000:1000",
        "--workdir",
        "/tmp",
        "--env",
        "GREETING=hi there",
        "--hostname",
        "ocitest-host",
        IMAGE,
        "sh",
        "-c",
        'echo "$(id -u):$(id -g) $(pwd) $GREETING $(hostname)"; grep CapEff /proc/self/status',
      ]);
      expect(r.stderr).toBe("");
      expect(r.stdout.split("\n")[0]).toBe("1000:1000 /tmp hi there ocitest-host");
      expect(r.stdout).toMatch(/^CapEff:\s+0+$/m);
      const root = await p.run([
        "run",
        "--rm",
        ...RUN_FLAGS,
        "--cap-drop",
        "CHOWN",
        IMAGE,
        "sh",
        "-c",
        "chown 1:1 /tmp 2>/dev/null && echo chowned || echo no chown",
      ]);
      expect(root.stdout).toBe("no chown\n");
      // a command that cannot be executed: podman's 126, with the runtime's reason
      const notExec = await p.run(["run", "--rm", ...RUN_FLAGS, IMAGE, "/etc/passwd"]);
      expect(notExec.code).toBe(126);
      expect(notExec.stderr).toMatch(/permission denied/i);
    });

    test("run --read-only: the root is read-only, /tmp is podman's tmpfs (tmpcopyup)", async () => {
      const r = await p.run([
        "run",
        "--rm",
        ...RUN_FLAGS,
        "--read-only",
        IMAGE,
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo wrote / || echo / is read-only; touch /tmp/x && echo wrote /tmp",
      ]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("/ is read-only\nwrote /tmp\n");
    });

    test("pause, unpause, kill -s", async () => {
      const name = `ocitest-pause-${rt.name}`;
      await p.ok(["run", "-d", "--name", name, ...RUN_FLAGS, IMAGE, "sh", "-c", "trap 'echo got USR1' USR1; while :; do sleep 0.1; done"]);
      try {
        await p.ok(["pause", name]);
        expect((await p.ok(["inspect", "--format", "{{.State.Status}}", name])).trim()).toBe("paused");
        await p.ok(["unpause", name]);
        expect((await p.ok(["inspect", "--format", "{{.State.Status}}", name])).trim()).toBe("running");
        await p.ok(["kill", "-s", "USR1", name]);
        expect(await waitFor(async () => (await p.run(["logs", name])).stdout.includes("got USR1"))).toBe(true);
        await p.ok(["kill", name]);
        expect(await waitFor(async () => (await p.ok(["inspect", "--format", "{{.State.Status}}", name])).trim() === "exited")).toBe(true);
      } finally {
        await p.run(["rm", "-f", "-t", "0", name]);
      }
    });

    test("run -it through tmux: a terminal, input, exit", async () => {
      const tmp = mkdtempSync(join(tmpdir(), "nsbox-ocitest-tmux-"));
      const sock = join(tmp, "tmux.sock");
      const done = join(tmp, "done");
      const tmux = (...a: string[]) => Bun.spawnSync(["tmux", "-S", sock, ...a], { stdout: "pipe", stderr: "pipe" });
      try {
        const cmd = `${p
          .argv(["run", "-it", "--rm", ...RUN_FLAGS, IMAGE, "sh"])
          .map(shq)
          .join(" ")}; echo $? > ${done}`;
        expect(tmux("new-session", "-d", "-x", "100", "-y", "30", cmd).exitCode).toBe(0);
        const screen = () => tmux("capture-pane", "-p").stdout.toString();
        const prompt = await waitFor(() => /[#$]\s*$/m.test(screen()), 30000);
        expect(prompt ? "prompt" : screen()).toBe("prompt");
        tmux("send-keys", "tty; echo $((6*7)) $(stty size)", "Enter");
        expect(await waitFor(() => /^42 30 100$/m.test(screen()), 10000)).toBe(true);
        expect(screen()).toMatch(/^\/dev\/pts\/\d+$/m);
        tmux("send-keys", "exit 3", "Enter");
        expect(await waitFor(() => existsSync(done) && readFileSync(done, "utf8").trim() !== "", 20000)).toBe(true);
        expect(readFileSync(done, "utf8").trim()).toBe("3");
      } finally {
        tmux("kill-server");
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    test("run -d, exec, logs, stop, rm", async () => {
      const name = `ocitest-d-${rt.name}`;
      const id = (
        await p.ok([
          "run",
          "-d",
          "--name",
          name,
          ...RUN_FLAGS,
          IMAGE,
          "sh",
          "-c",
          "echo started; trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.2; done",
        ])
      ).trim();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      expect(await waitFor(async () => (await p.run(["logs", name])).stdout.includes("started"))).toBe(true);
      expect((await p.ok(["inspect", "--format", "{{.State.Status}} {{.OCIRuntime}}", name])).trim()).toBe(`running ${rt.name}`);
      expect(await p.ok(["exec", name, "sh", "-c", "echo in $(hostname); cat /proc/1/cmdline | tr '\\0' ' '"])).toMatch(/^in \w+\nsh -c echo started/);
      expect((await p.run(["exec", name, "sh", "-c", "exit 5"])).code).toBe(5);
      expect((await p.ok(["exec", "-i", name, "cat"], { stdin: "through stdin\n" })).trim()).toBe("through stdin");
      const stop = await p.run(["stop", "-t", "10", name]);
      expect(stop.stderr).toBe("");
      expect(stop.code).toBe(0);
      expect((await p.ok(["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name])).trim()).toBe("exited 0");
      expect((await p.ok(["logs", name])).split("\n")).toEqual(["started", "got TERM", ""]);
      await p.ok(["rm", name]);
      expect((await p.ok(["ps", "-a", "-q", "--filter", `name=^${name}$`])).trim()).toBe("");
    });

    test("run --memory and --pids-limit set the container's cgroup", async () => {
      const name = `ocitest-limits-${rt.name}`;
      await p.ok(["run", "-d", "--name", name, "--memory", "64m", "--pids-limit", "50", ...RUN_FLAGS, IMAGE, "sleep", "1000"]);
      try {
        const pid = Number((await p.ok(["inspect", "--format", "{{.State.Pid}}", name])).trim());
        expect(pid).toBeGreaterThan(0);
        const v1 = existsSync("/sys/fs/cgroup/memory");
        expect(cgroupFile(pid, "memory", v1 ? "memory.limit_in_bytes" : "memory.max")).toBe(String(64 * 1024 * 1024));
        expect(cgroupFile(pid, "pids", "pids.max")).toBe("50");
        // and it holds: the 50th process cannot be made
        const fork = await p.run([
          "exec",
          name,
          "sh",
          "-c",
          "i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done 2>/dev/null; echo made $(jobs -p | wc -l)",
        ]);
        expect(fork.stdout).not.toMatch(/made 60/);
      } finally {
        await p.run(["rm", "-f", "-t", "0", name]);
      }
    });

    test("pod create: two containers share localhost", async () => {
      const pod = `ocitest-pod-${rt.name}`;
      await p.ok([
        "pod",
        "create",
        "--name",
        pod,
        "--network",
        "none",
        "--infra-image",
        IMAGE,
        "--infra-command",
        "sleep 1000000",
        "--cgroup-parent",
        "/ocitest",
      ]);
      try {
        await p.ok([
          "run",
          "-d",
          "--pod",
          pod,
          "--name",
          `${pod}-web`,
          "--ulimit",
          "nofile=20000:20000",
          "--ulimit",
          "nproc=32768:32768",
          IMAGE,
          "sh",
          "-c",
          "mkdir -p /www && echo shared localhost > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www",
        ]);
        let got = "";
        const ok = await waitFor(async () => {
          const r = await p.run([
            "run",
            "--rm",
            "--pod",
            pod,
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=32768:32768",
            IMAGE,
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:8080/",
          ]);
          got = r.stdout + r.stderr;
          return r.code === 0;
        }, 20000);
        expect(got).toBe("shared localhost\n");
        expect(ok).toBe(true);
      } finally {
        await p.run(["pod", "rm", "-f", "-t", "0", pod]);
      }
    });
  });
}

function shq(word: string): string {
  return /^[A-Za-z0-9_./=:@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
