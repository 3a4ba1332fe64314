/**
 * A real registry for the image tests: the CNCF distribution registry (Debian's
 * docker-registry) on 127.0.0.1 with a random port and a temporary storage
 * directory, plain, with htpasswd basic auth, or with token auth (a tiny token
 * server here, Bun.serve, that signs RS256 JWTs with a self-signed certificate
 * made by openssl at test time, passed in the x5c header as distribution's
 * registry/auth/token/token.go verifies it).
 *
 * Test images are built offline with umoci from the busybox rootfs
 * (buildTestLayout) and pushed with skopeo (push). Nothing here reaches a
 * network outside the machine.
 *
 * Needs (installed by .ci/setup --test): docker-registry, skopeo, umoci,
 * apache2-utils (htpasswd), openssl.
 */
import { createHash, createSign } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

export const TOOLS = ["docker-registry", "skopeo", "umoci", "htpasswd", "openssl"];

/** The tools the registry tests need that are missing (the tests say so instead of failing obscurely). */
export function missingTools(): string[] {
  return TOOLS.filter((t) => !Bun.which(t));
}

export function sh(argv: string[], opts: { env?: Record<string, string>; cwd?: string; input?: string } = {}): string {
  const r = Bun.spawnSync(argv, {
    env: opts.env ?? (process.env as Record<string, string>),
    cwd: opts.cwd,
    stdin: opts.input !== undefined ? new TextEncoder().encode(opts.input) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${r.exitCode}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

/** A port nobody listens on right now (the kernel picks it). */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Registry {
  /** 127.0.0.1:PORT */
  host: string;
  port: number;
  /** the registry's storage directory (docker/registry/v2/...) */
  storage: string;
  auth: AuthMode;
  stop(): Promise<void>;
  /** where a blob's bytes live in the storage directory */
  blobFile(digest: string): string;
}

export type AuthMode = "none" | "basic" | "token";
export const USER = "nsboxtest";
export const PASSWORD = "s3cret-pw";

/** Starts a registry in dir (created); stop() ends it and its token server. */
export async function startRegistry(dir: string, auth: AuthMode = "none"): Promise<Registry> {
  mkdirSync(dir, { recursive: true });
  const storage = join(dir, "storage");
  mkdirSync(storage, { recursive: true });
  const users: Record<string, string> = { [USER]: PASSWORD };
  let authYaml = "";
  let tokenServer: { stop(): void } | undefined;
  if (auth === "basic") {
    writeFileSync(join(dir, "htpasswd"), sh(["htpasswd", "-Bbn", USER, PASSWORD]));
    authYaml = `auth:\n  htpasswd:\n    realm: nsbox-test\n    path: ${join(dir, "htpasswd")}\n`;
  } else if (auth === "token") {
    const t = await startTokenServer(dir, users);
    tokenServer = t;
    authYaml = `auth:\n  token:\n    realm: ${t.realm}\n    service: ${t.service}\n    issuer: ${t.issuer}\n    rootcertbundle: ${t.cert}\n`;
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const config = join(dir, "config.yml");
    writeFileSync(
      config,
      `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${authYaml}`,
    );
    const proc = Bun.spawn(["docker-registry", "serve", config], { stdout: "ignore", stderr: Bun.file(join(dir, "registry.log")) });
    // ready when /v2/ answers (200, or 401 with auth); bounded by count
    for (let i = 0; i < 100 && proc.exitCode === null; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/v2/`)
        .then((r) => r.status === 200 || r.status === 401)
        .catch(() => false);
      if (ok) {
        return {
          host: `127.0.0.1:${port}`,
          port,
          storage,
          auth,
          blobFile: (digest: string) => {
            const hex = digest.replace(/^sha256:/, "");
            return join(storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
          },
          stop: async () => {
            proc.kill("SIGKILL");
            await proc.exited;
            tokenServer?.stop();
          },
        };
      }
      await Bun.sleep(50);
    }
    proc.kill("SIGKILL");
    await proc.exited;
  }
  tokenServer?.stop();
  throw new Error(`docker-registry did not start: ${readFileSync(join(dir, "registry.log"), "utf8").slice(-500)}`);
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/**
 * The token server of the distribution token auth spec: GET /token?service&scope
 * (basic credentials optional). Anonymous users get pull on every repository;
 * known users get what they ask for; wrong credentials get 401.
 */
async function startTokenServer(dir: string, users: Record<string, string>) {
  const key = join(dir, "token.key");
  const cert = join(dir, "token.crt");
  sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=nsbox-test-token"]);
  const certDer = Bun.spawnSync(["openssl", "x509", "-in", cert, "-outform", "DER"]).stdout;
  const x5c = [Buffer.from(certDer).toString("base64")];
  const pem = readFileSync(key, "utf8");
  const service = "nsbox-test-registry";
  const issuer = "nsbox-test-issuer";
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/token") return new Response("not found", { status: 404 });
      const auth = req.headers.get("authorization");
      let subject = "";
      let known = false;
      if (auth?.startsWith("Basic ")) {
        const [u, ...p] = Buffer.from(auth.slice(6), "base64").toString().split(":");
        if (!u || users[u] !== p.join(":")) return new Response(JSON.stringify({ details: "wrong credentials" }), { status: 401 });
        subject = u;
        known = true;
      }
      const access = url.searchParams.getAll("scope").flatMap((scope) => {
        const [type, ...rest] = scope.split(":");
        const actions = (rest.pop() ?? "").split(",");
        const name = rest.join(":");
        const granted = known ? actions : actions.filter((a) => a === "pull");
        return [{ type, name, actions: granted }];
      });
      const now = Math.floor(Date.now() / 1000);
      const header = { typ: "JWT", alg: "RS256", x5c };
      const claims = {
        iss: issuer,
        sub: subject,
        aud: url.searchParams.get("service") ?? service,
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: createHash("sha256").update(`${now}${Math.random()}`).digest("hex").slice(0, 16),
        access,
      };
      const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      const sig = createSign("RSA-SHA256").update(input).sign(pem);
      const token = `${input}.${b64url(sig)}`;
      return Response.json({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
    },
  });
  return { realm: `http://127.0.0.1:${server.port}/token`, service, issuer, cert, stop: () => server.stop(true) };
}

/**
 * skopeo copy from an OCI layout tag into the registry (`all`: every platform of
 * an index; `format: "v2s2"`: docker's media types). Asynchronous: the token server runs in this process and must answer
 * skopeo while it pushes.
 */
export async function push(reg: Registry, layoutTag: string, repoTag: string, opts: { all?: boolean; format?: "oci" | "v2s2" } = {}): Promise<void> {
  const creds = reg.auth === "none" ? [] : ["--dest-creds", `${USER}:${PASSWORD}`];
  const argv = [
    "skopeo",
    "copy",
    "--quiet",
    "--dest-tls-verify=false",
    ...(opts.all ? ["--all"] : []),
    ...(opts.format ? ["--format", opts.format] : []),
    ...creds,
    `oci:${layoutTag}`,
    `docker://${reg.host}/${repoTag}`,
  ];
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err.trim()}`);
}

export interface TestLayout {
  /** the OCI layout directory; tags: base, multi, config, many, index (two platforms), random (bench) */
  dir: string;
  /** the manifest digest of a tag in the layout */
  manifestOf(tag: string): string;
}

export function umoci(args: string[]) {
  sh(["umoci", ...args]);
}

/**
 * Builds the test images in an OCI layout, offline:
 *  - base:   one layer, the busybox rootfs
 *  - multi:  base + a layer adding /data/{keep,gone} and /olddir/{a,b} + a layer deleting
 *            /data/gone (whiteout) and replacing /olddir (opaque) with /olddir/new
 *  - config: base with Entrypoint, Cmd, Env, WorkingDir, User, StopSignal
 *  - many:   base + 63 small layers (64 in all)
 *  - index:  an image index with linux/amd64 and linux/arm64 entries (the arm64 one
 *            is the same busybox with its config saying arm64: enough to pull)
 *  - foreign: an index with only linux/s390x and linux/ppc64le entries
 */
export function buildTestLayout(dir: string, rootfs: string, opts: { many?: boolean } = {}): TestLayout {
  const L = join(dir, "layout");
  rmSync(L, { recursive: true, force: true });
  const work = join(dir, "layout-work");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  umoci(["init", "--layout", L]);
  umoci(["new", "--image", `${L}:base`]);
  umoci(["config", "--image", `${L}:base`, "--os", "linux", "--architecture", "amd64", "--no-history"]);
  umoci(["insert", "--image", `${L}:base`, rootfs, "/"]);

  // multi: whiteout and opaque directory
  umoci(["config", "--image", `${L}:base`, "--tag", "multi", "--no-history"]);
  const add = join(work, "add");
  mkdirSync(join(add, "data"), { recursive: true });
  mkdirSync(join(add, "olddir"), { recursive: true });
  writeFileSync(join(add, "data/keep"), "keep\n");
  writeFileSync(join(add, "data/gone"), "gone\n");
  writeFileSync(join(add, "olddir/a"), "a\n");
  writeFileSync(join(add, "olddir/b"), "b\n");
  umoci(["insert", "--image", `${L}:multi`, join(add, "data"), "/data"]);
  umoci(["insert", "--image", `${L}:multi`, join(add, "olddir"), "/olddir"]);
  umoci(["insert", "--image", `${L}:multi`, "--whiteout", "/data/gone"]);
  const repl = join(work, "olddir-new");
  mkdirSync(repl, { recursive: true });
  writeFileSync(join(repl, "new"), "new\n");
  umoci(["insert", "--image", `${L}:multi`, "--opaque", repl, "/olddir"]);

  // config: what `run IMAGE` applies
  umoci([
    "config",
    "--image",
    `${L}:base`,
    "--tag",
    "config",
    "--config.entrypoint",
    "/bin/sh",
    "--config.entrypoint",
    "-c",
    "--config.cmd",
    'echo "cmd:$FOO:$(pwd):$(id -u)"',
    "--config.env",
    "FOO=from-image",
    "--config.env",
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
    "--config.workingdir",
    "/tmp",
    "--config.user",
    "1000:1000",
    "--config.stopsignal",
    "SIGINT",
  ]);

  if (opts.many !== false) {
    umoci(["config", "--image", `${L}:base`, "--tag", "many", "--no-history"]);
    for (let i = 1; i < 64; i++) {
      const f = join(work, `layer-${i}`);
      writeFileSync(f, `layer ${i}\n`);
      umoci(["insert", "--no-history", "--image", `${L}:many`, f, `/layers/${i}`]);
    }
  }

  // index: amd64 (base) and arm64 (base's layer, a config that says arm64)
  umoci(["config", "--image", `${L}:base`, "--tag", "base-arm64", "--architecture", "arm64", "--no-history"]);
  const layout = readLayoutIndex(L);
  const entry = (tag: string, architecture: string, variant?: string) => {
    const m = layout.manifests.find((x) => x.annotations?.["org.opencontainers.image.ref.name"] === tag);
    if (!m) throw new Error(`no tag ${tag} in ${L}`);
    return { mediaType: m.mediaType, digest: m.digest, size: m.size, platform: { os: "linux", architecture, ...(variant ? { variant } : {}) } };
  };
  const addIndex = (tag: string, manifests: ReturnType<typeof entry>[]) => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }));
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    writeFileSync(join(L, "blobs/sha256", digest.slice(7)), bytes);
    layout.manifests.push({
      mediaType: "application/vnd.oci.image.index.v1+json",
      digest,
      size: bytes.length,
      annotations: { "org.opencontainers.image.ref.name": tag },
    });
  };
  addIndex("index", [entry("base", "amd64"), entry("base-arm64", "arm64", "v8")]);
  // an index without this machine's platform (for amd64 and arm64 hosts alike)
  addIndex("foreign", [entry("base-arm64", "s390x"), entry("base-arm64", "ppc64le")]);
  writeFileSync(join(L, "index.json"), JSON.stringify(layout));
  rmSync(work, { recursive: true, force: true });
  return {
    dir: L,
    manifestOf: (tag: string) => {
      const m = readLayoutIndex(L).manifests.find((x) => x.annotations?.["org.opencontainers.image.ref.name"] === tag);
      if (!m) throw new Error(`no tag ${tag} in ${L}`);
      return m.digest;
    },
  };
}

type LayoutIndex = { schemaVersion: number; manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] };

function readLayoutIndex(dir: string): LayoutIndex {
  return JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as LayoutIndex;
}

/**
 * Adds a tag to the layout made of `layers` random-data layers of `mib` MiB each
 * (incompressible, as a real pull's worst case): the bench's image.
 */
export function addRandomImage(layoutDir: string, tag: string, layers: number, mib: number, work: string): void {
  umoci(["new", "--image", `${layoutDir}:${tag}`]);
  umoci(["config", "--image", `${layoutDir}:${tag}`, "--os", "linux", "--architecture", "amd64", "--no-history"]);
  mkdirSync(work, { recursive: true });
  for (let i = 0; i < layers; i++) {
    const f = join(work, `random-${i}`);
    const buf = Buffer.alloc(mib << 20);
    for (let off = 0; off < buf.length; off += 65536) crypto.getRandomValues(buf.subarray(off, Math.min(off + 65536, buf.length)));
    writeFileSync(f, buf);
    umoci(["insert", "--no-history", "--image", `${layoutDir}:${tag}`, f, `/random-${i}`]);
    rmSync(f);
  }
}

/** Every file under the store's tmp/ (nothing may be left there after a pull, failed or not). */
export function storeTemps(dataRoot: string): string[] {
  const tmp = join(dataRoot, "images/tmp");
  return existsSync(tmp) ? readdirSync(tmp) : [];
}

/** The blobs in the store (hex names). */
export function storeBlobs(dataRoot: string): string[] {
  const d = join(dataRoot, "images/blobs/sha256");
  return existsSync(d) ? readdirSync(d).sort() : [];
}

/** Size of a blob file in the registry's storage (0 when absent). */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** What the proxy does to blob downloads (GET /v2/.../blobs/...). */
export interface ProxyMode {
  /** close the connection after this many bytes of each blob response (undefined: never) */
  cutAfter?: number;
  /** cut only the first `cutTimes` blob responses, then pass them whole (undefined: every one) */
  cutTimes?: number;
  /** pause this long after each 64 KiB of a blob (a slow link) */
  delayMs?: number;
  /** slow down only these blobs (digests); default every blob */
  slowOnly?: string[];
  /**
   * answer blob requests with a 307 to "storage" on another origin (127.0.0.1:OTHERPORT/storage/DIGEST,
   * served from the registry's storage directory), as registries on object storage do
   */
  redirectBlobs?: boolean;
  /** answer blob requests with a 307 to the proxy again, forever */
  redirectLoop?: boolean;
}

export interface RegistryProxy {
  host: string;
  mode: ProxyMode;
  /** blob responses cut so far (a blob shorter than cutAfter is never cut) */
  cuts: number;
  /** Range headers seen on blob requests */
  ranges: string[];
  /** requests to the redirect's "storage" that carried an Authorization header (must stay 0: another origin) */
  leakedAuth: number;
  /** requests served from "storage" */
  storageRequests: number;
  stop(): void;
}

/**
 * An HTTP proxy in front of a registry, in this process (Bun.serve on 127.0.0.1):
 * it can slow blob downloads down or cut their connection mid-stream. Tests that
 * use it must run nsbox asynchronously (this event loop serves the proxy).
 */
export function startProxy(target: string, blobFile?: (digest: string) => string): RegistryProxy {
  const state: RegistryProxy = { host: "", mode: {}, cuts: 0, ranges: [], leakedAuth: 0, storageRequests: 0, stop: () => {} };
  // "object storage": another origin (another port), serving blobs from the registry's storage directory
  const storage = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      state.storageRequests++;
      if (req.headers.get("authorization")) state.leakedAuth++;
      if (!blobFile || !url.pathname.startsWith("/storage/")) return new Response("not found", { status: 404 });
      return new Response(Bun.file(blobFile(url.pathname.slice("/storage/".length))));
    },
  });
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 60,
    async fetch(req) {
      const url = new URL(req.url);
      const headers = new Headers(req.headers);
      headers.set("host", target);
      const upstream = await fetch(`http://${target}${url.pathname}${url.search}`, { method: req.method, headers, redirect: "manual" });
      const isBlob = /\/blobs\/sha256:/.test(url.pathname) && req.method === "GET";
      if (isBlob && state.mode.redirectLoop) return new Response(null, { status: 307, headers: { location: `${url.pathname}?loop=${Math.random()}` } });
      if (isBlob && state.mode.redirectBlobs) {
        const digest = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
        return new Response(null, { status: 307, headers: { location: `http://127.0.0.1:${storage.port}/storage/${digest}` } });
      }
      if (!isBlob || !upstream.body) return upstream;
      const range = req.headers.get("range");
      if (range) state.ranges.push(range);
      const mode = state.mode;
      const cut = mode.cutAfter !== undefined;
      const slow = !!mode.delayMs && (!mode.slowOnly || mode.slowOnly.some((d) => url.pathname.endsWith(d)));
      const reader = upstream.body.getReader();
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { done, value } = await reader.read();
          if (done) return controller.close();
          let chunk = value;
          if (cut && sent + chunk.byteLength > (mode.cutAfter as number) && (mode.cutTimes === undefined || state.cuts < mode.cutTimes)) {
            state.cuts++;
            chunk = chunk.subarray(0, (mode.cutAfter as number) - sent);
            if (chunk.byteLength) controller.enqueue(chunk);
            await Bun.sleep(20);
            reader.cancel().catch(() => {});
            return controller.error(new Error("proxy: connection cut"));
          }
          for (let off = 0; off < chunk.byteLength; off += 65536) {
            controller.enqueue(chunk.subarray(off, off + 65536));
            if (slow) await Bun.sleep(mode.delayMs as number);
          }
          sent += chunk.byteLength;
        },
      });
      const out = new Headers(upstream.headers);
      return new Response(body, { status: upstream.status, headers: out });
    },
  });
  state.host = `127.0.0.1:${server.port}`;
  state.stop = () => {
    server.stop(true);
    storage.stop(true);
  };
  return state;
}

/**
 * Pushes an image straight through the registry API (no skopeo): for content
 * skopeo would refuse to copy, such as a config that is not JSON.
 */
export async function pushRaw(
  reg: Registry,
  repo: string,
  tag: string,
  config: Uint8Array,
  layers: Uint8Array[],
  mediaType = "application/vnd.oci.image.manifest.v1+json",
): Promise<string> {
  const digestOf = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
  const upload = async (bytes: Uint8Array) => {
    const digest = digestOf(bytes);
    const start = await fetch(`http://${reg.host}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    const loc = new URL(start.headers.get("location") as string, `http://${reg.host}`);
    loc.searchParams.set("digest", digest);
    const put = await fetch(loc, { method: "PUT", body: bytes, headers: { "content-type": "application/octet-stream" } });
    if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${await put.text()}`);
    return { digest, size: bytes.byteLength };
  };
  const c = await upload(config);
  const ls = [];
  for (const l of layers) ls.push({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...(await upload(l)) });
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType, config: { mediaType: "application/vnd.oci.image.config.v1+json", ...c }, layers: ls });
  const res = await fetch(`http://${reg.host}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: manifest, headers: { "content-type": mediaType } });
  if (res.status !== 201) throw new Error(`manifest upload: ${res.status} ${await res.text()}`);
  return digestOf(new TextEncoder().encode(manifest));
}
