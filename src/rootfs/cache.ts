/**
 * The rootfs cache: a tarball is extracted once, into <root>/rootfs/<sha256 of the
 * tarball>, and reused by every later run.
 *
 * Hashing a large tarball on every run would cost more than starting a container,
 * so a small record per tarball path (its device, inode, size and mtime) remembers
 * the digest while the file is unchanged. Extraction goes to a private temporary
 * directory renamed into place when complete: concurrent runs never see half a
 * tree, and the loser of a race simply throws its copy away.
 */
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { fail } from "../errors.ts";
import { join } from "../posixpath.ts";
import { isRootless } from "../rootless/identity.ts";
import { extractAsUser, removeTree, renameTree } from "../rootless/storage.ts";
import { rootfsCacheDir } from "../state/paths.ts";
import { randomHex } from "../state/random.ts";

interface FileRecord {
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  digest: string;
}

async function sha256File(path: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** The cached tree for this tarball, extracting it first if needed. */
export async function rootfsFromTarball(tarball: string): Promise<string> {
  const cache = rootfsCacheDir();
  mkdirSync(join(cache, "by-path"), { recursive: true, mode: 0o700 });
  const st = statSync(tarball, { bigint: true });
  const recordPath = join(cache, "by-path", new Bun.CryptoHasher("sha256").update(tarball).digest("hex"));
  let digest: string | undefined;
  try {
    const rec = JSON.parse(readFileSync(recordPath, "utf8")) as FileRecord;
    if (rec.dev === Number(st.dev) && rec.ino === Number(st.ino) && rec.size === Number(st.size) && rec.mtimeNs === String(st.mtimeNs)) digest = rec.digest;
  } catch {
    // no record yet, or an unreadable one: hash the file
  }
  digest ??= await sha256File(tarball);
  const dir = join(cache, digest);
  if (!existsSync(dir)) {
    const tmp = join(cache, `.tmp-${randomHex(8)}`);
    // loaded only when a tarball has to be extracted (its decompressors cost start-up time)
    const { extractTar, TarError } = await import("./tar.ts");
    mkdirSync(tmp, { mode: 0o755 });
    try {
      if (isRootless()) await extractAsUser(tarball, tmp);
      else await extractTar(tarball, tmp);
    } catch (e) {
      removeTree(tmp);
      if (e instanceof TarError) fail(`cannot use rootfs "${tarball}": ${e.message}`);
      throw e;
    }
    try {
      renameTree(tmp, dir);
    } catch {
      // another nsbox extracted the same tarball first: use theirs
      removeTree(tmp);
    }
  }
  const rec: FileRecord = { dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), mtimeNs: String(st.mtimeNs), digest };
  const tmpRec = `${recordPath}.${process.pid}`;
  writeFileSync(tmpRec, JSON.stringify(rec));
  renameSync(tmpRec, recordPath);
  return dir;
}
