/**
 * Keeps Bun's node: modules out of the start of the commands whose start time
 * nsbox measures (bench/, issue 14): `run` (a rootfs or an image), `exec` and the
 * OCI verbs that podman and containerd run once per container.
 *
 * Loading node:fs alone costs a start 2.2-4.5 ms and ~1.9 MiB (measured: see
 * src/native/fs.ts); a static import of it anywhere in a command's chunks is
 * paid at every start of that command, even when the code that uses it never
 * runs. A lazy `require()` or `await import()` inside a function is allowed:
 * that is how the rare paths (a tarball rootfs, a tmpcopyup mount) get it.
 *
 * How: the same bundle as dist/nsbox (bun build --splitting), then, for each
 * command, the chunks its start loads: main's static imports, the chunks of the
 * modules it imports dynamically on that path, and theirs. Every static import
 * of a builtin module in them must be on the allowed list.
 *
 *   bun test/check-start-imports.ts   (make check; needs build/*.b64, made by make)
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Builtins a start may load: bun:ffi carries the system calls (src/native/syscall.ts). */
const ALLOWED = new Set(["bun:ffi"]);

/** Each command's start: the source modules it imports dynamically (main.ts is always loaded). */
const STARTS: Record<string, string[]> = {
  "run ROOTFS": ["src/cli/run.ts", "src/cgroup/warm.ts"],
  "run IMAGE": ["src/cli/run.ts", "src/cgroup/warm.ts", "src/image/store.ts"],
  exec: ["src/cli/exec.ts", "src/cgroup/warm.ts"],
  "OCI create/start/state/kill/delete": ["src/oci/cli.ts", "src/cgroup/warm.ts"],
};

const out = mkdtempSync(join(tmpdir(), "nsbox-start-imports-"));
try {
  const built = Bun.spawnSync(["bun", "build", "--splitting", "--format=esm", "--target=bun", "src/main.ts", "--outdir", out], {
    cwd: join(import.meta.dir, ".."),
    stderr: "pipe",
    stdout: "pipe",
  });
  if (built.exitCode !== 0) throw new Error(`bun build failed:\n${built.stderr.toString()}`);

  const chunks = new Map<string, string>();
  for (const f of readdirSync(out)) if (f.endsWith(".js")) chunks.set(f, readFileSync(join(out, f), "utf8"));

  /** The chunk a source module was bundled into (the unminified bundle names each module in a comment). */
  const chunkOf = (module: string): string => {
    const found = [...chunks].filter(([, text]) => text.includes(`\n// ${module}\n`)).map(([f]) => f);
    if (found.length !== 1) throw new Error(`${module}: expected in one chunk, found in ${found.length}`);
    return found[0] as string;
  };

  /** Static imports only: `import ... from "x"`, `export ... from "x"`, `import "x"` at a statement's start. */
  const staticImports = (text: string): string[] => {
    const found: string[] = [];
    for (const m of text.matchAll(/^(?:import|export)\s[^;]*?\sfrom\s*"([^"]+)"|^import\s*"([^"]+)"/gms)) found.push((m[1] ?? m[2]) as string);
    return found;
  };

  let bad = 0;
  for (const [command, modules] of Object.entries(STARTS)) {
    const todo = ["main.js", ...modules.map(chunkOf)];
    const seen = new Set<string>();
    const builtins = new Map<string, string>();
    while (todo.length > 0) {
      const f = todo.pop() as string;
      if (seen.has(f)) continue;
      seen.add(f);
      for (const spec of staticImports(chunks.get(f) ?? "")) {
        if (spec.startsWith("./")) todo.push(spec.slice(2));
        else if (!builtins.has(spec)) builtins.set(spec, f);
      }
    }
    const forbidden = [...builtins].filter(([b]) => !ALLOWED.has(b));
    for (const [b, f] of forbidden) {
      const modulesIn = [...new Set([...(chunks.get(f) ?? "").matchAll(/^\/\/ (src\/\S+)$/gm)].map((m) => m[1]))].join(", ");
      console.error(
        `${command}: chunk ${f} imports "${b.includes(":") ? b : `node:${b}`}" statically (modules in it: ${modulesIn}): load it inside the function that needs it`,
      );
      bad++;
    }
    if (forbidden.length === 0) console.log(`${command}: ${seen.size} chunks, builtins: ${[...builtins.keys()].join(", ") || "none"}`);
  }
  if (bad > 0) process.exit(1);
} finally {
  rmSync(out, { recursive: true, force: true });
}
