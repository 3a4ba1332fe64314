/**
 * Running nsbox itself, for one file-system job, inside a user namespace with a
 * rootless container's mapping (as `podman unshare` does): there the caller is
 * root over every id of the mapping, so it can extract a tarball with its owners
 * (uid 1000 in the archive becomes the subordinate range's 1000th id) and remove
 * what a container wrote, even files owned by subordinate ids.
 *
 * The process is made by the helper, as a container's is (a clone with
 * CLONE_NEWUSER that waits for its maps), and execs nsbox's own executable with
 * the hidden `userns-helper` command (see cli/userns-helper.ts).
 */

import type { IdMapping } from "../config/spec.ts";
import { NsboxError } from "../errors.ts";
import { closeSync, openSync, readFileSync, readSync } from "../native/fs.ts";
import { loadHelper } from "../native/helper.ts";
import { strerror } from "../native/libc.ts";
import { C, EXEC_FD, type Op, W } from "../native/program.ts";
import { becomeSubreaper, closeFd, exitCodeOf, makePipe, readChildPid, recvMessage, sendGo, spawnProcess, waitPid } from "../native/spawn.ts";
import { writeRootlessIdMaps } from "./idmap.ts";

const CLONE_NEWUSER = 0x10000000;
const PR_SET_DUMPABLE = 4;
const SIGKILL = 9;
/** C_SETID's "leave the supplementary groups" (setgroups may be denied in the namespace) */
const KEEP_GROUPS = 0xffffffff;

/** nsbox's own command line: the compiled binary, or bun and the script in development. */
export function selfCommand(): string[] {
  return Bun.main.startsWith("/$bunfs") ? [process.execPath] : [process.execPath, Bun.main];
}

/**
 * Runs `nsbox userns-helper ARGS...` in a new user namespace with these maps;
 * returns its exit code and what it wrote on stderr (its error message).
 */
export function runInUserns(uid: IdMapping[], gid: IdMapping[], args: string[]): { code: number; stderr: string } {
  loadHelper();
  const exe = openSync(process.execPath, "r");
  const devnull = openSync("/dev/null", "r");
  const [errR, errW] = makePipe();
  const argv = [...selfCommand(), "userns-helper", ...args];
  const env = Object.entries(process.env)
    .filter(([k]) => k === "PATH" || k === "HOME" || k.startsWith("NSBOX_") || k.startsWith("XDG_"))
    .map(([k, v]) => `${k}=${v}`);
  const w: Op[] = [
    { code: W.CLONE, fields: [CLONE_NEWUSER, -1], what: "create the helper process" },
    { code: W.EXIT, fields: [], what: "hand the helper to nsbox" },
  ];
  // Dumpable, so that its /proc/PID belongs to the caller: newuidmap checks that.
  const c: Op[] = [
    { code: C.PRCTL, fields: [PR_SET_DUMPABLE, 1], what: "let newuidmap see the helper" },
    { code: C.SYNC, fields: [1, 1], what: "wait for the id maps" },
    { code: C.SETID, fields: [0, 0, KEEP_GROUPS], what: "become root in the user namespace" },
    { code: C.PDEATHSIG, fields: [SIGKILL], what: "tie the helper to nsbox" },
    { code: C.STDIO, fields: [devnull, errW, errW], what: "set up the helper's output" },
    { code: C.EXEC, fields: [EXEC_FD, exe, "", argv, env], what: "run nsbox in the user namespace" },
  ];
  becomeSubreaper();
  let s: ReturnType<typeof spawnProcess>;
  try {
    s = spawnProcess(w, c);
  } finally {
    // the helper has its copies now
    closeFd(errW);
    closeFd(devnull);
    closeSync(exe);
  }
  let pid = 0;
  try {
    pid = readChildPid(s);
    waitPid(s.wpid);
    if (pid <= 0) throw new NsboxError(`cannot create a user namespace: ${pid < 0 ? strerror(-pid).toLowerCase() : "the helper died at once"}${userNsHint()}`);
    const m = recvMessage(s);
    if (m.type !== "ready") throw new NsboxError(`the user namespace helper failed before its id maps (${m.type === "error" ? strerror(m.errno) : m.type})`);
    writeRootlessIdMaps(pid, uid, gid);
    sendGo(s);
    const done = recvMessage(s);
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(4096);
    for (let n = readSync(errR, buf); n > 0; n = readSync(errR, buf)) chunks.push(Buffer.from(buf.subarray(0, n)));
    const st = waitPid(pid);
    pid = 0;
    const stderr = Buffer.concat(chunks).toString().trim();
    if (done.type === "error") return { code: 125, stderr: stderr || `cannot run nsbox in the user namespace: ${strerror(done.errno).toLowerCase()}` };
    return { code: exitCodeOf(st.status), stderr };
  } finally {
    if (pid > 0) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
      waitPid(pid);
    }
    for (const fd of [s.syncFd, s.statusFd, errR]) closeFd(fd);
  }
}

/** Why a user namespace may be refused on this host. */
export function userNsHint(): string {
  try {
    const max = Number(readFileSync("/proc/sys/user/max_user_namespaces", "utf8"));
    if (max === 0) return " (user namespaces are disabled: /proc/sys/user/max_user_namespaces is 0)";
  } catch {
    // not readable: no hint
  }
  return "";
}
