/**
 * Keeps Bun's node: modules (and bun:ffi) out of the start of nsbox's commands: `run` (a
 * rootfs or a stored image), `exec`, the lifecycle commands (ps, logs, stop, rm,
 * inspect, stats, ns, pod, network, and the cleanup that a foreground run's user
 * waits for) and the OCI verbs that podman and containerd run once per container.
 *
 * Loading node:fs alone costs a start 2.2-4.5 ms and ~1.9 MiB (measured: see
 * src/native/fs.ts); a static import of it anywhere in a command's chunks is
 * paid at every start of that command, even when the code that uses it never
 * runs. A lazy `require()` or `await import()` inside a function is allowed:
 * that is how the rare paths (a tarball rootfs, a tmpcopyup mount) get it.
 *
 * How: the same bundle as dist/nsbox (bun build --splitting), then, for each
 * command main.ts loads (its `await import("./cli/...")` table), the chunks its
 * start loads: main's static imports, the command's chunk, the cgroup warm-up's
 * (src/early.ts) and theirs. Every static import of a builtin module in them
 * must be on the allowed list. run and exec are static imports of main.ts, so
 * their chunks are in every command's start: the check also fails when they or
 * the warm-up are reached through an import() instead (see STATIC_STARTS).
 *
 *   bun test/check-start-imports.ts   (make check; needs build/*.hex.ts, made by make)
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Builtins a start may load: none. (bun:ffi neither: the system calls go through
 * the helper, a Node-API addon, and bun:ffi is required only where no copy of
 * the helper could be loaded, see src/native/addon.ts.)
 */
const ALLOWED = new Set<string>();

/**
 * Commands whose work is reading and writing archives or talking to a
 * registry: node:fs's load is noise beside it, and their modules use its streams.
 */
const EXEMPT = new Set(["src/cli/export.ts", "src/cli/image.ts", "src/cli/login.ts", "src/cli/pull.ts", "src/cli/rootfs.ts"]);

/** The modules of the starts measured against crun (issue 14): no import() before they run. */
const STATIC_STARTS = ["src/cli/run.ts", "src/cli/exec.ts", "src/cgroup/warm.ts"];

/**
 * Code that run and exec import only when a container needs it (the bridge, a
 * pod, a rootless user, a child's failure, a message): none of it may be among
 * main's static imports, which every start loads (~32 kB less code to load:
 * bench/trace-notes.md, "Twelfth stop").
 */
const LAZY = [
  "src/net/setup.ts",
  "src/net/netlink.ts",
  "src/net/nft.ts",
  "src/rootless/network.ts",
  "src/rootless/spec.ts",
  "src/container/pod.ts",
  "src/container/childerror.ts",
  "node_modules/consola/dist/core.mjs",
];

const root = join(import.meta.dir, "..");
const commandModules = [...readFileSync(join(root, "src/main.ts"), "utf8").matchAll(/await import\("\.\/([^"]+)"\)/g)].map((m) => `src/${m[1]}`);

/** Each start: the source modules it imports dynamically (main.ts and its static imports are always loaded). */
const STARTS: Record<string, string[]> = {};
for (const m of new Set(commandModules)) if (!EXEMPT.has(m)) STARTS[m] = [m, "src/cgroup/warm.ts"];
STARTS["run IMAGE"] = ["src/cli/run.ts", "src/cgroup/warm.ts", "src/image/store.ts"];

const out = mkdtempSync(join(tmpdir(), "nsbox-start-imports-"));
try {
  const built = Bun.spawnSync(["bun", "build", "--splitting", "--format=esm", "--target=bun", "src/main.ts", "--outdir", out], {
    cwd: root,
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

  // run's and exec's start makes no import(): making none took ~0.7 MiB of peak
  // RSS and ~2.7 ms off a run (see the commands table in src/main.ts), so
  // their modules and the cgroup warm-up's are among main's static imports.
  const fromMain = new Set<string>();
  for (const todo = ["main.js"]; todo.length > 0; ) {
    const f = todo.pop() as string;
    if (fromMain.has(f)) continue;
    fromMain.add(f);
    for (const spec of staticImports(chunks.get(f) ?? "")) if (spec.startsWith("./")) todo.push(spec.slice(2));
  }
  for (const m of STATIC_STARTS)
    if (!fromMain.has(chunkOf(m))) {
      console.error(`${m} is loaded by an import() at the start: import it statically (from src/main.ts or src/early.ts)`);
      bad++;
    }
  for (const m of LAZY)
    if (fromMain.has(chunkOf(m))) {
      console.error(`${m} is imported statically by a start (see LAZY): import it where it is needed (await import(), or require() of an ESM file)`);
      bad++;
    }
  if (bad === 0) console.log(`statically loaded at every start: ${STATIC_STARTS.join(", ")}; not loaded by one: ${LAZY.length} modules (LAZY)`);
  // (exitCode, not exit(): the finally below removes the bundle)
  if (bad > 0) process.exitCode = 1;
} finally {
  rmSync(out, { recursive: true, force: true });
}
