/**
 * `nsbox rootfs busybox DIR`: the default rootfs, made from a static busybox
 * (Debian's busybox-static): the binary, a link per applet, /etc/passwd and
 * /etc/group, and the empty directories a container expects.
 */
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { fail } from "../errors.ts";
import { dirname, join } from "../posixpath.ts";

const CANDIDATES = ["/bin/busybox", "/usr/bin/busybox", "/usr/lib/busybox/busybox-static"];

/** True for an ELF executable without a PT_INTERP header (statically linked). */
export function isStaticElf(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const h = Buffer.alloc(64);
    readSync(fd, h, 0, 64, 0);
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2) return false; // ELF, 64-bit
    const phoff = Number(h.readBigUInt64LE(32));
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3 /* PT_INTERP */) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}

export function findStaticBusybox(given?: string): string {
  if (given) {
    if (!existsSync(given)) fail(`--busybox ${given} does not exist`);
    if (!isStaticElf(given)) fail(`--busybox ${given} is not a statically linked executable (it would not run inside the container)`);
    return given;
  }
  for (const c of CANDIDATES) if (existsSync(c) && isStaticElf(c)) return c;
  fail("no static busybox found: install Debian's busybox-static (apt-get install busybox-static) or pass --busybox PATH");
}

/** The applets this busybox provides, with their install paths ("/bin/sh"...). */
function applets(busybox: string): string[] {
  const r = Bun.spawnSync([busybox, "--list-full"], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) fail(`${busybox} --list-full failed: ${r.stderr.toString().trim()}`);
  return r.stdout
    .toString()
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

export function buildBusyboxRootfs(dir: string, busyboxPath?: string): { applets: number; busybox: string } {
  const busybox = findStaticBusybox(busyboxPath);
  if (existsSync(dir) && (!statSync(dir).isDirectory() || readdirSync(dir).length > 0))
    fail(`${dir} already exists and is not an empty directory: give a new path`);
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "sys", "dev", "home", "var/tmp", "run"])
    mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  chmodSync(join(dir, "tmp"), 0o1777);
  chmodSync(join(dir, "var/tmp"), 0o1777);
  chmodSync(join(dir, "root"), 0o700);
  copyFileSync(busybox, join(dir, "bin/busybox"));
  chmodSync(join(dir, "bin/busybox"), 0o755);
  const list = applets(busybox);
  for (const a of list) {
    const rel = a.replace(/^\/+/, "");
    if (rel === "bin/busybox" || rel.includes("..")) continue;
    const dest = join(dir, rel);
    mkdirSync(dirname(dest), { recursive: true });
    // a relative link, so the rootfs works wherever it is mounted
    const depth = rel.split("/").length - 1;
    if (!existsSync(dest)) symlinkSync(`${"../".repeat(depth)}bin/busybox`, dest);
  }
  writeFileSync(
    join(dir, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
  );
  writeFileSync(join(dir, "etc/group"), "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n");
  writeFileSync(join(dir, "etc/hostname"), "nsbox\n");
  writeFileSync(join(dir, "etc/hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  writeFileSync(join(dir, "etc/resolv.conf"), "");
  return { applets: list.length, busybox };
}
