/**
 * nsbox as an OCI runtime, driven with runc's command line as podman, containerd
 * and the runtime-tools suite drive it: create leaves the process waiting, start
 * releases it, state follows, kill, delete; the pid file, the console socket
 * (received by a python3 peer: Bun cannot receive SCM_RIGHTS), --preserve-fds,
 * hooks in order, run in the foreground and pause/resume.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { NSBOX, useNsbox, waitUntil } from "../helpers/nsbox.ts";
import { cgroupDirsOf, makeBundle, ociHarness } from "../helpers/oci.ts";

const ctx = useNsbox("oci");
const h = ociHarness(ctx);
const harness = () => h;

describe("create, start, state, kill, delete", () => {
  test("the process waits between create and start; state follows each step; nothing is left", async () => {
    const { oci, dir } = harness();
    const out = join(dir, "out-life");
    mkdirSync(out);
    const b = makeBundle(ctx, "life", (c) => {
      c.process.args = ["sh", "-c", "echo ran > /out/ran; exec sleep 100"];
      c.mounts.push({ destination: "/out", type: "bind", source: out, options: ["rbind", "rw"] });
    });
    const id = "life";
    const pidFile = join(dir, "life.pid");
    const created = await oci(["create", "--bundle", b, "--pid-file", pidFile, id]);
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    const st = JSON.parse((await oci(["state", id])).stdout);
    expect(st).toMatchObject({ ociVersion: "1.2.0", id, status: "created", bundle: b, annotations: { "org.test": "yes" } });
    expect(st.pid).toBeGreaterThan(0);
    // the pid file was written before create returned, and names the container's process
    expect(readFileSync(pidFile, "utf8")).toBe(String(st.pid));
    // namespaces and cgroup exist, the command has not run
    expect(readFileSync(`/proc/${st.pid}/cgroup`, "utf8")).toMatch(new RegExp(`/nsbox-oci-[0-9a-f]{8}-${id}\n`));
    expect(existsSync(join(out, "ran"))).toBe(false);

    const started = await oci(["start", id]);
    expect([started.code, started.stderr]).toEqual([0, ""]);
    await waitUntil(() => existsSync(join(out, "ran")), 10000);
    expect(JSON.parse((await oci(["state", id])).stdout).status).toBe("running");
    // start again: not in created state
    const again = await oci(["start", id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^nsbox: cannot start container life: it is running, not created\n$/);
    // delete without --force refuses a running container
    const del = await oci(["delete", id]);
    expect(del.code).toBe(1);
    expect(del.stderr).toContain("use delete --force");

    expect((await oci(["kill", id, "KILL"])).code).toBe(0);
    await waitUntil(async () => JSON.parse((await oci(["state", id])).stdout).status === "stopped", 10000);
    expect(JSON.parse((await oci(["state", id])).stdout).pid).toBe(0);
    expect((await oci(["delete", id])).code).toBe(0);
    const gone = await oci(["state", id]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe(`nsbox: container "life" does not exist\n`);
    expect(existsSync(join(h.root, id))).toBe(false);
    expect(cgroupDirsOf(id)).toEqual([]);
  });

  test("state says stopped when the process ended with no nsbox running; list shows it", async () => {
    const { oci } = harness();
    const b = makeBundle(ctx, "quick", (c) => {
      c.process.args = ["true"];
    });
    expect((await oci(["create", "--bundle", b, "quick"])).code).toBe(0);
    expect((await oci(["start", "quick"])).code).toBe(0);
    await waitUntil(async () => JSON.parse((await oci(["state", "quick"])).stdout).status === "stopped", 10000);
    const list = JSON.parse((await oci(["list", "--format", "json"])).stdout);
    expect(list.find((c: { id: string }) => c.id === "quick")).toMatchObject({ status: "stopped", pid: 0 });
    expect((await oci(["ls"])).stdout).toMatch(/^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER\n/);
    expect((await oci(["delete", "quick"])).code).toBe(0);
    // delete --force of what does not exist is no error (containerd relies on it)
    expect((await oci(["delete", "--force", "quick"])).code).toBe(0);
  });

  test("kill takes names and numbers; kill of a created container; delete of a created one", async () => {
    const { oci } = harness();
    const b = makeBundle(ctx, "sig", (c) => {
      c.process.args = ["sh", "-c", "trap 'exit 42' USR1; while :; do sleep 0.05; done"];
    });
    expect((await oci(["create", "--bundle", b, "sig"])).code).toBe(0);
    expect((await oci(["start", "sig"])).code).toBe(0);
    await Bun.sleep(200);
    expect((await oci(["kill", "sig", "SIGUSR1"])).code).toBe(0);
    await waitUntil(async () => JSON.parse((await oci(["state", "sig"])).stdout).status === "stopped", 10000);
    const bad = await oci(["kill", "sig", "NOPE"]);
    expect(bad.code).toBe(1);
    // a stopped container: runc's words, which containerd's shim and podman look for
    const stopped = await oci(["kill", "sig", "TERM"]);
    expect([stopped.code, stopped.stderr]).toEqual([1, "nsbox: cannot signal container sig: container not running\n"]);
    expect((await oci(["delete", "sig"])).code).toBe(0);

    expect((await oci(["create", "--bundle", b, "sig2"])).code).toBe(0);
    expect((await oci(["kill", "sig2", "9"])).code).toBe(0);
    await waitUntil(async () => JSON.parse((await oci(["state", "sig2"])).stdout).status === "stopped", 10000);
    expect((await oci(["delete", "sig2"])).code).toBe(0);
    expect((await oci(["create", "--bundle", b, "sig3"])).code).toBe(0);
    expect((await oci(["delete", "sig3"])).code).toBe(0);
    expect(cgroupDirsOf("sig3")).toEqual([]);
  });

  test("ps lists the container's processes (json, and the host's ps filtered); kill --all signals them all", async () => {
    const { oci } = harness();
    const b = makeBundle(ctx, "many", (c) => {
      c.process.args = ["sh", "-c", "sleep 101 & sleep 102 & wait"];
    });
    expect((await oci(["run", "-d", "--bundle", b, "many"])).code).toBe(0);
    let pids: number[] = [];
    await waitUntil(async () => (pids = JSON.parse((await oci(["ps", "--format", "json", "many"])).stdout)).length === 3, 5000);
    const table = (await oci(["ps", "many", "-o", "pid,args"])).stdout.trim().split("\n");
    expect(table[0]?.trim()).toBe("PID COMMAND");
    expect(
      table
        .slice(1)
        .map((l) => l.trim().split(/\s+/).slice(1).join(" "))
        .sort(),
    ).toEqual(["sh -c sleep 101 & sleep 102 & wait", "sleep 101", "sleep 102"]);
    expect((await oci(["kill", "--all", "many", "KILL"])).code).toBe(0);
    await waitUntil(async () => JSON.parse((await oci(["state", "many"])).stdout).status === "stopped", 5000);
    for (const pid of pids) await waitUntil(() => !existsSync(`/proc/${pid}/cmdline`) || readFileSync(`/proc/${pid}/cmdline`, "utf8") === "", 5000);
    expect((await oci(["delete", "many"])).code).toBe(0);
  });

  test("pause and resume freeze the container's cgroup", async () => {
    const { oci } = harness();
    const b = makeBundle(ctx, "frz", (c) => {
      c.process.args = ["sleep", "100"];
    });
    expect((await oci(["create", "--bundle", b, "frz"])).code).toBe(0);
    expect((await oci(["start", "frz"])).code).toBe(0);
    expect((await oci(["pause", "frz"])).code).toBe(0);
    const pid = JSON.parse((await oci(["state", "frz"])).stdout).pid;
    expect(JSON.parse((await oci(["state", "frz"])).stdout).status).toBe("paused");
    await waitUntil(() => /^State:\s+D/m.test(readFileSync(`/proc/${pid}/status`, "utf8")), 5000);
    expect((await oci(["resume", "frz"])).code).toBe(0);
    expect(JSON.parse((await oci(["state", "frz"])).stdout).status).toBe("running");
    expect((await oci(["delete", "--force", "frz"])).code).toBe(0);
    expect(cgroupDirsOf("frz")).toEqual([]);
  });
});

describe("run", () => {
  test("in the foreground: the command's output and exit code, then the container is gone", async () => {
    const { oci } = harness();
    const b = makeBundle(ctx, "fg", (c) => {
      c.process.args = ["sh", "-c", "echo out; echo err >&2; exit 3"];
    });
    const r = await oci(["run", "--bundle", b, "fg"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
    expect((await oci(["state", "fg"])).code).toBe(1);
  });

  test("in the foreground with a terminal: nsbox relays it (no --console-socket), at the caller's size", async () => {
    const b = makeBundle(ctx, "fgtty", (c) => {
      c.process.terminal = true;
      c.process.args = ["sh", "-c", "tty; stty size; exit 9"];
    });
    // script(1) gives nsbox a terminal of its own
    const cmd = `stty cols 77 rows 22; ${NSBOX} --root ${h.root} run --bundle ${b} fgtty; echo "rc=$?"`;
    // (stdin an open pipe: at end-of-file script would type its EOF character into the terminal)
    const p = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    expect(await p.exited).toBe(0);
    const out = (await new Response(p.stdout).text()).replaceAll("\r", "");
    expect(out).toBe("/dev/pts/0\n22 77\nrc=9\n");
    expect(existsSync(join(h.root, "fgtty"))).toBe(false);
  });

  test("run -d returns at once with the container running", async () => {
    const { oci } = harness();
    const b = makeBundle(ctx, "det", (c) => {
      c.process.args = ["sleep", "100"];
    });
    expect((await oci(["run", "-d", "--bundle", b, "det"])).code).toBe(0);
    expect(JSON.parse((await oci(["state", "det"])).stdout).status).toBe("running");
    expect((await oci(["delete", "-f", "det"])).code).toBe(0);
  });
});

describe("fds and terminals", () => {
  test("--preserve-fds passes fds 3.. to the command; others are closed", async () => {
    const { dir } = harness();
    const b = makeBundle(ctx, "fds", (c) => {
      c.process.args = ["sh", "-c", "echo via-fd3 >&3; ls /proc/self/fd | sort -n | tr '\\n' ' ' >&3"];
    });
    const file = join(dir, "fd3.txt");
    // fd 3 and fd 4 open in the caller; only fd 3 is to pass
    const cmd = `exec 3>${file} 4>/dev/null; ${NSBOX} --root ${h.root} run --preserve-fds 1 --bundle ${b} fds`;
    const p = Bun.spawn(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
    expect(await p.exited).toBe(0);
    const text = readFileSync(file, "utf8");
    expect(text).toStartWith("via-fd3\n");
    // 0 1 2 3 and the one ls opens to read the directory
    expect(text.split("\n")[1]?.trim().split(" ").map(Number).slice(0, 4)).toEqual([0, 1, 2, 3]);
    expect(text).not.toContain(" 4 5");
  });

  test("LISTEN_FDS (socket activation) passes fds too, and the command gets LISTEN_FDS and LISTEN_PID=1", async () => {
    const { dir } = harness();
    const b = makeBundle(ctx, "lfds", (c) => {
      c.process.args = ["sh", "-c", 'echo "$LISTEN_FDS $LISTEN_PID" >&3; echo four >&4'];
    });
    const f3 = join(dir, "l3.txt");
    const f4 = join(dir, "l4.txt");
    const cmd = `exec 3>${f3} 4>${f4}; LISTEN_FDS=1 ${NSBOX} --root ${h.root} run --preserve-fds 1 --bundle ${b} lfds`;
    const p = Bun.spawn(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
    expect(await p.exited).toBe(0);
    expect(readFileSync(f3, "utf8")).toBe("1 1\n");
    expect(readFileSync(f4, "utf8")).toBe("four\n");
  });

  test("--console-socket receives the pty master (SCM_RIGHTS); the process has a terminal of the given size", async () => {
    const { oci, dir } = harness();
    const sock = join(dir, "console.sock");
    const b = makeBundle(ctx, "tty", (c) => {
      c.process.terminal = true;
      c.process.consoleSize = { height: 33, width: 101 };
      c.process.args = ["sh", "-c", "tty; stty size; stat -c %t:%T /dev/console; stat -L -c %t:%T /proc/self/fd/0"];
    });
    const recv = Bun.spawn(["python3", "-c", CONSOLE_RECEIVER, sock], { stdout: "pipe", stderr: "pipe" });
    await waitUntil(() => existsSync(sock), 10000);
    const created = await oci(["create", "--bundle", b, "--console-socket", sock, "tty"]);
    expect([created.code, created.stderr]).toEqual([0, ""]);
    expect((await oci(["start", "tty"])).code).toBe(0);
    expect(await recv.exited).toBe(0);
    const text = (await new Response(recv.stdout).text()).replaceAll("\r", "");
    expect(text).toBe("/dev/pts/0\n33 101\n88:0\n88:0\n");
    await waitUntil(async () => JSON.parse((await oci(["state", "tty"])).stdout).status === "stopped", 10000);
    expect((await oci(["delete", "tty"])).code).toBe(0);
  });

  test("a terminal without --console-socket is refused before anything exists", async () => {
    const { oci } = harness();
    const b = makeBundle(ctx, "notty", (c) => {
      c.process.terminal = true;
    });
    const r = await oci(["create", "--bundle", b, "notty"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no --console-socket");
    expect(existsSync(join(h.root, "notty"))).toBe(false);
  });
});

describe("hooks", () => {
  test("run in the spec's order, each with the state on stdin, createContainer and startContainer in the container", async () => {
    const { oci, dir } = harness();
    const hostDir = join(dir, "hooks");
    mkdirSync(hostDir);
    writeFileSync(join(hostDir, "log"), "");
    const inContainer = ["startContainer"];
    // each hook writes its kind, the mount namespace it ran in, and its stdin; in
    // the container the log is at /hooks/log (a bind of the host's dir)
    const hook = (name: string) => {
      const log = inContainer.includes(name) ? "/hooks/log" : join(hostDir, "log");
      return { path: "/bin/sh", args: ["sh", "-c", `read -r s; echo "${name} $(hostname) $s" >> ${log}`], timeout: 10 };
    };
    const b = makeBundle(ctx, "hooks", (c) => {
      c.process.args = ["sleep", "2"];
      c.mounts.push({ destination: "/hooks", type: "bind", source: hostDir, options: ["rbind", "rw"] });
      c.hooks = Object.fromEntries(["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"].map((k) => [k, [hook(k)]]));
    });
    const created = await oci(["create", "--bundle", b, "hooks"]);
    expect([created.code, created.stderr]).toEqual([0, ""]);
    const pid = JSON.parse((await oci(["state", "hooks"])).stdout).pid;
    expect((await oci(["start", "hooks"])).code).toBe(0);
    await waitUntil(async () => JSON.parse((await oci(["state", "hooks"])).stdout).status === "stopped", 10000);
    expect((await oci(["delete", "hooks"])).code).toBe(0);
    const entries = readFileSync(join(hostDir, "log"), "utf8")
      .trim()
      .split("\n")
      .map((l) => {
        const [kind = "", host = "", ...rest] = l.split(" ");
        return { kind, host, state: JSON.parse(rest.join(" ")) };
      });
    expect(entries.map((e) => e.kind)).toEqual(["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]);
    // prestart: "created", as runc and crun give it (and runtime-tools checks)
    expect(entries.map((e) => e.state.status)).toEqual(["created", "creating", "creating", "created", "running", "stopped"]);
    // the hostname tells the uts namespace; the log's path (/hooks) the mount namespace
    // (createContainer runs in the container's namespaces before pivot_root, where the host's path of the
    // log still works, and before the hostname is set, as under runc: it still sees the host's name; oci-hooks checks its namespaces)
    expect(entries.map((e) => (e.host === "runc" ? "container" : e.host === hostname() ? "runtime" : e.host))).toEqual([
      "runtime",
      "runtime",
      "runtime",
      "container",
      "runtime",
      "runtime",
    ]);
    for (const e of entries) expect(e.state).toMatchObject({ id: "hooks", bundle: b, ociVersion: "1.2.0" });
    expect(entries[0]?.state.pid).toBe(pid);
  });

  test("a failing createRuntime hook fails create, and nothing is left", async () => {
    const { oci } = harness();
    const b = makeBundle(ctx, "badhook", (c) => {
      c.hooks = { createRuntime: [{ path: "/bin/sh", args: ["sh", "-c", "echo no way >&2; exit 5"] }] };
    });
    const r = await oci(["create", "--bundle", b, "badhook"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("nsbox: createRuntime hook 0 (/bin/sh) failed: exit status 5: no way\n");
    expect(existsSync(join(h.root, "badhook"))).toBe(false);
    expect(cgroupDirsOf("badhook")).toEqual([]);
  });

  test("a failing startContainer hook fails start and stops the container", async () => {
    const { oci } = harness();
    const b = makeBundle(ctx, "badstart", (c) => {
      c.hooks = { startContainer: [{ path: "/bin/sh", args: ["sh", "-c", "exit 3"] }] };
    });
    expect((await oci(["create", "--bundle", b, "badstart"])).code).toBe(0);
    const r = await oci(["start", "badstart"]);
    expect([r.code, r.stderr]).toEqual([1, "nsbox: startContainer hook 0 (/bin/sh) failed: exit status 3\n"]);
    await waitUntil(async () => JSON.parse((await oci(["state", "badstart"])).stdout).status === "stopped", 5000);
    expect((await oci(["delete", "badstart"])).code).toBe(0);
  });

  test("a hook past its timeout is killed and fails create", async () => {
    const { oci } = harness();
    const b = makeBundle(ctx, "slowhook", (c) => {
      c.hooks = { prestart: [{ path: "/bin/sleep", args: ["sleep", "30"], timeout: 1 }] };
    });
    const t0 = Date.now();
    const r = await oci(["create", "--bundle", b, "slowhook"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("prestart hook 0 (/bin/sleep) failed: timed out after 1s");
    expect(Date.now() - t0).toBeLessThan(20000);
    expect(existsSync(join(h.root, "slowhook"))).toBe(false);
  });
});

const CONSOLE_RECEIVER = `
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
c, _ = s.accept()
msg, fds, flags, addr = socket.recv_fds(c, 1024, 1)
out = b""
while True:
    try:
        b = os.read(fds[0], 4096)
    except OSError:
        break
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
`;
