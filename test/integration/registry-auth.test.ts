/**
 * Registry authentication against docker-registry: anonymous (plain), htpasswd
 * basic auth through nsbox login/logout, bearer tokens from a token server
 * (anonymous and with credentials), and 401 for wrong credentials.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { isOneNsboxLine, useNsbox } from "../helpers/nsbox.ts";
import {
  buildTestLayout,
  missingTools,
  PASSWORD,
  push,
  type Registry,
  type RegistryProxy,
  startProxy,
  startRegistry,
  storeBlobs,
  storeTemps,
  USER,
} from "../helpers/registry.ts";

const ctx = useNsbox("registry-auth");
let basic: Registry;
let token: Registry;
let proxy: RegistryProxy;
const dockerConfig = () => join(ctx.tmp, "docker");
const env = () => ({ DOCKER_CONFIG: dockerConfig(), REGISTRY_AUTH_FILE: undefined, XDG_RUNTIME_DIR: undefined });

beforeAll(async () => {
  const missing = missingTools();
  if (missing.length) throw new Error(`missing ${missing.join(", ")}: run .ci/setup --test`);
  const layout = buildTestLayout(ctx.mkdir("images"), ctx.rootfs, { many: false });
  basic = await startRegistry(ctx.mkdir("basic"), "basic");
  token = await startRegistry(ctx.mkdir("token"), "token");
  await push(basic, `${layout.dir}:base`, "test/base:1");
  await push(token, `${layout.dir}:base`, "test/base:1");
  await push(token, `${layout.dir}:multi`, "test/multi:1");
  proxy = startProxy(token.host, token.blobFile);
}, 120000);

afterAll(async () => {
  proxy?.stop();
  await basic?.stop();
  await token?.stop();
});

describe("basic auth (htpasswd)", () => {
  test("without login: 401, one line naming the fix", async () => {
    const r = await ctx.nsbox(["pull", `${basic.host}/test/base:1`], { env: env() });
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(`nsbox: ${basic.host}: 401 unauthorized for ${basic.host}/test/base:1: log in first (nsbox login ${basic.host})\n`);
    expect(storeTemps(ctx.dataRoot)).toEqual([]);
  });

  test("login with a wrong password: refused, nothing stored", async () => {
    const r = await ctx.nsbox(["login", "-u", USER, "-p", "wrong", basic.host], { env: env() });
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(`nsbox: login to ${basic.host} failed: 401 unauthorized (wrong user or password)\n`);
    expect(() => statSync(join(dockerConfig(), "config.json"))).toThrow();
  });

  test("login --password-stdin stores docker's format (0600); pull works; logout undoes it", async () => {
    const r = await ctx.nsbox(["login", "-u", USER, "--password-stdin", basic.host], { env: env(), input: `${PASSWORD}\n` });
    expect(r.stderr).toContain("login succeeded");
    expect(r.code).toBe(0);
    const file = join(dockerConfig(), "config.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const cfg = JSON.parse(readFileSync(file, "utf8"));
    expect(cfg.auths[basic.host].auth).toBe(Buffer.from(`${USER}:${PASSWORD}`).toString("base64"));
    const pulled = await ctx.nsbox(["pull", "-q", `${basic.host}/test/base:1`], { env: env() });
    expect(pulled.stderr).toBe("");
    expect(pulled.code).toBe(0);
    const out = await ctx.nsbox(["logout", basic.host], { env: env() });
    expect(out.code).toBe(0);
    expect(JSON.parse(readFileSync(file, "utf8")).auths[basic.host]).toBeUndefined();
    const again = await ctx.nsbox(["logout", basic.host], { env: env() });
    expect(again.code).toBe(125);
    expect(again.stderr).toBe(`nsbox: not logged in to ${basic.host}\n`);
  });

  test("credentials in podman's auth.json are used too", async () => {
    const authFile = join(ctx.tmp, "auth.json");
    await Bun.write(authFile, JSON.stringify({ auths: { [basic.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString("base64") } } }));
    const r = await ctx.nsbox(["pull", "-q", `${basic.host}/test/base:1`], { env: { ...env(), REGISTRY_AUTH_FILE: authFile } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });
});

describe("bearer tokens", () => {
  test("anonymous pull gets a pull token from the realm", async () => {
    const r = await ctx.nsbox(["pull", "-q", `${token.host}/test/base:1`], { env: env() });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^sha256:[a-f0-9]{64}\n$/);
  });

  test("login checks the credentials with the token server: wrong ones are 401", async () => {
    const bad = await ctx.nsbox(["login", "-u", USER, "-p", "nope", token.host], { env: env() });
    expect(bad.code).toBe(125);
    expect(bad.stderr).toBe(`nsbox: login to ${token.host} failed: 401 unauthorized (wrong user or password)\n`);
    const good = await ctx.nsbox(["login", "-u", USER, "-p", PASSWORD, token.host], { env: env() });
    expect(good.code).toBe(0);
    const r = await ctx.nsbox(["pull", "-q", `${token.host}/test/base:1`], { env: env() });
    expect(r.code).toBe(0);
  });

  test("stored credentials that became wrong: one line, exit 125", async () => {
    const authFile = join(ctx.tmp, "stale.json");
    await Bun.write(authFile, JSON.stringify({ auths: { [token.host]: { auth: Buffer.from(`${USER}:stale`).toString("base64") } } }));
    const r = await ctx.nsbox(["pull", `${token.host}/test/base:1`], { env: { ...env(), REGISTRY_AUTH_FILE: authFile } });
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("401 unauthorized (wrong user or password)");
    expect(isOneNsboxLine(r.stderr)).toBe(true);
  });
});

describe("redirects", () => {
  test("blobs redirected to storage on another origin: followed, and the registry's token is not sent there", async () => {
    proxy.mode = { redirectBlobs: true };
    proxy.leakedAuth = 0;
    proxy.storageRequests = 0;
    const before = storeBlobs(ctx.dataRoot).length;
    const r = await ctx.nsbox(["pull", `${proxy.host}/test/multi:1`], { env: env() });
    proxy.mode = {};
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // the config and the new layers came from "storage"
    expect(proxy.storageRequests).toBeGreaterThanOrEqual(storeBlobs(ctx.dataRoot).length - before - 1);
    expect(proxy.storageRequests).toBeGreaterThan(0);
    expect(proxy.leakedAuth).toBe(0);
  });
});
