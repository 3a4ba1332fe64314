/**
 * Sparse files against GNU tar: archives made by `tar --sparse` in every format
 * GNU tar writes (old GNU, pax 0.0, 0.1 and 1.0), extracted by extractTar and
 * by GNU tar, compared by content and by the blocks they allocate (holes stay
 * holes). Malformed maps are refused before anything is written.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TarReader } from "../../src/rootfs/tar/reader.ts";
import { Extractor } from "../../src/rootfs/tar/writer.ts";
import { extractTar, TarError } from "../../src/rootfs/tar.ts";

const scratchDirs: string[] = [];
afterAll(() => {
  for (const d of scratchDirs) rmSync(d, { recursive: true, force: true });
}, 60_000);

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), "nsbox-tar-sparse-"));
  scratchDirs.push(d);
  return d;
}

function sh(script: string, cwd: string): string {
  const r = Bun.spawnSync(["bash", "-euo", "pipefail", "-c", script], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${script} failed (${r.exitCode}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

const sha256 = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");

/** 512-byte blocks allocated (stat's st_blocks). */
const blocks = (path: string): number => Number(statSync(path, { bigint: true }).blocks);

const FORMATS: [string, string][] = [
  ["gnu", "--format=gnu"],
  ["pax 0.0", "--format=pax --sparse-version=0.0"],
  ["pax 0.1", "--format=pax --sparse-version=0.1"],
  ["pax 1.0", "--format=pax --sparse-version=1.0"],
];

/**
 * Sparse files: "few" (two data runs in 10 MiB, fits an old GNU header), "many"
 * (120 runs: old GNU extension blocks, a 1.0 map longer than a block), "tail"
 * (data at the very end), "hole" (no data at all), and a plain file.
 */
function sparseTree(dir: string): void {
  sh(
    `mkdir t && cd t
     put() { head -c "$3" /dev/urandom | dd of="$1" bs="$3" seek="$2" oflag=seek_bytes conv=notrunc status=none; }
     truncate -s 10M few && put few 5000000 4 && put few 8000000 70000
     truncate -s 20M many && for i in $(seq 0 119); do put many $((i * 160000 + 7)) 100; done
     truncate -s 3M tail && printf end >> tail
     truncate -s 64M hole
     mkdir d && echo plain > d/plain`,
    dir,
  );
}

describe("sparse files, as GNU tar --sparse writes them", () => {
  for (const [label, flags] of FORMATS) {
    test(`${label}: same content as the original and as GNU tar's extraction, holes kept`, async () => {
      const dir = scratch();
      sparseTree(dir);
      sh(`tar --sparse ${flags} -C t -cf a.tar .`, dir);
      mkdirSync(join(dir, "gnu"));
      sh("tar -xpf a.tar -C gnu", dir);
      const ours = join(dir, "ours");
      mkdirSync(ours);
      await extractTar(join(dir, "a.tar"), ours);
      for (const name of ["few", "many", "tail", "hole", "d/plain"]) {
        const original = join(dir, "t", name);
        expect(statSync(join(ours, name)).size).toBe(statSync(original).size);
        expect(sha256(join(ours, name))).toBe(sha256(original));
        // within a few blocks of GNU tar's result (file systems round differently)
        expect(blocks(join(ours, name))).toBeLessThanOrEqual(blocks(join(dir, "gnu", name)) + 64);
      }
      expect(blocks(join(ours, "hole"))).toBe(0);
      // 10 MiB with ~74 KB of data: a few hundred sectors, not 20480
      expect(blocks(join(ours, "few"))).toBeLessThan(1024);
      expect(blocks(join(ours, "many"))).toBeLessThan(120 * 16 + 64);
      // the 0.1/1.0 header names ("GNUSparseFile.N/...") are not what is extracted
      expect(sh("ls -A", ours).split("\n").filter(Boolean).sort()).toEqual(["d", "few", "hole", "many", "tail"]);
    });
  }

  test("pax 1.0 and old GNU archives fed in chunks of any size: maps and extension blocks split anywhere", async () => {
    const dir = scratch();
    sparseTree(dir);
    sh("tar --sparse --format=pax --sparse-version=1.0 -C t -cf a.tar . && tar --sparse --format=gnu -C t -cf g.tar .", dir);
    for (const tarball of ["a.tar", "g.tar"]) {
      const data = readFileSync(join(dir, tarball));
      for (const step of [1, 7, 511, 513, 4099]) {
        const dest = join(dir, `chunks-${tarball}-${step}`);
        mkdirSync(dest);
        const extractor = new Extractor(dest, true);
        const reader = new TarReader(extractor);
        let ended = false;
        for (let off = 0; off < data.length && !ended; off += step) ended = reader.push(data.subarray(off, off + step));
        reader.finish();
        extractor.finish();
        extractor.close();
        expect(sha256(join(dest, "many"))).toBe(sha256(join(dir, "t/many")));
        expect(sha256(join(dest, "few"))).toBe(sha256(join(dir, "t/few")));
      }
    }
  }, 60_000);
});

describe("malformed sparse maps are refused", () => {
  /** A pax archive with one file of `data` and these pax records, by Python's tarfile. */
  const paxArchive = (dir: string, records: Record<string, string>, data: string, name = "f"): string => {
    sh(
      `python3 -c '
import tarfile, io, json, sys
records = json.loads(sys.argv[1])
with tarfile.open("m.tar", "w", format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo(sys.argv[3]); i.size = len(sys.argv[2])
    i.pax_headers = records
    t.addfile(i, io.BytesIO(sys.argv[2].encode()))
' '${JSON.stringify(records)}' '${data}' '${name}'`,
      dir,
    );
    return join(dir, "m.tar");
  };

  const refusal = async (tarball: string): Promise<string> => {
    const dest = join(scratch(), "dest");
    mkdirSync(dest);
    const err = await extractTar(tarball, dest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TarError);
    expect(sh("ls -A", dest)).toBe("");
    return (err as Error).message;
  };

  test("data past the real size, lengths not adding up, unpaired 0.0 records, unknown versions", async () => {
    const dir = scratch();
    expect(await refusal(paxArchive(dir, { "GNU.sparse.size": "10", "GNU.sparse.map": "8,4" }, "abcd"))).toBe(
      'refusing entry "f": its sparse map puts data at 8+4, past its size of 10',
    );
    expect(await refusal(paxArchive(dir, { "GNU.sparse.size": "100", "GNU.sparse.map": "0,2,50,3" }, "abcd"))).toBe(
      'refusing entry "f": its sparse map holds 5 bytes of data but the archive stores 4',
    );
    expect(await refusal(paxArchive(dir, { "GNU.sparse.size": "100", "GNU.sparse.offset": "0" }, "abcd"))).toContain("unpaired");
    expect(await refusal(paxArchive(dir, { "GNU.sparse.major": "2", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "9" }, "abcd"))).toBe(
      'refusing entry "f": sparse format 2.0 is not supported (only 0.0, 0.1 and 1.0)',
    );
    expect(await refusal(paxArchive(dir, { "GNU.sparse.size": "1x", "GNU.sparse.map": "0,4" }, "abcd"))).toContain("malformed pax GNU.sparse.size");
  });

  test("a 1.0 map that is not numbers, or runs past the data", async () => {
    const dir = scratch();
    const v1 = { "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "100", "GNU.sparse.name": "f" };
    expect(await refusal(paxArchive(dir, v1, `1\nx\n${"y".repeat(508)}`))).toContain("malformed pax sparse map");
    expect(await refusal(paxArchive(dir, v1, "2\n0\n"))).toBe('refusing entry "f": its sparse map runs past the end of its data');
    expect(await refusal(paxArchive(dir, v1, `9999999\n${"y".repeat(504)}`))).toBe('refusing entry "f": its sparse map has more than 349525 segments');
  });

  test("the real name goes through the path policy too", async () => {
    const dir = scratch();
    const v1 = { "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "100", "GNU.sparse.name": "../evil" };
    expect(await refusal(paxArchive(dir, v1, "0\n"))).toBe('refusing entry "../evil": it climbs out of the target with ".."');
  });
});
