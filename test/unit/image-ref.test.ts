/** Image references as docker parses them, registries.json mirrors, challenges, platforms, credentials files. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { credentialsFor, removeCredentials, storeCredentials } from "../../src/image/auth.ts";
import { isLocalHost, parseReference, registryHost } from "../../src/image/reference.ts";
import { parseChallenge } from "../../src/image/registry/challenge.ts";
import { RegistryClient } from "../../src/image/registry/client.ts";
import { choosePlatform, type Descriptor, parseManifest, parsePlatform } from "../../src/image/registry/manifest.ts";
import { removeTempDirs, tempDir } from "../helpers/tmp.ts";

afterAll(removeTempDirs);

const D = `sha256:${"a".repeat(64)}`;

describe("parseReference", () => {
  const cases: [string, string, string][] = [
    ["alpine", "docker.io/library/alpine:latest", "alpine:latest"],
    ["alpine:3.20", "docker.io/library/alpine:3.20", "alpine:3.20"],
    ["user/x", "docker.io/user/x:latest", "user/x:latest"],
    ["docker.io/alpine", "docker.io/library/alpine:latest", "alpine:latest"],
    ["index.docker.io/library/alpine:1", "docker.io/library/alpine:1", "alpine:1"],
    ["localhost/x", "localhost/x:latest", "localhost/x:latest"],
    ["localhost:5000/team/x:1.0", "localhost:5000/team/x:1.0", "localhost:5000/team/x:1.0"],
    ["127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest"],
    ["[::1]:5000/x:t", "[::1]:5000/x:t", "[::1]:5000/x:t"],
    ["quay.io/a/b/c:t_1.x-y", "quay.io/a/b/c:t_1.x-y", "quay.io/a/b/c:t_1.x-y"],
    [`x@${D}`, `docker.io/library/x@${D}`, `x@${D}`],
    [`x:t@${D}`, `docker.io/library/x:t@${D}`, `x:t@${D}`],
    ["a__b/c-d.e", "docker.io/a__b/c-d.e:latest", "a__b/c-d.e:latest"],
  ];
  for (const [text, full, familiar] of cases) {
    test(text, () => {
      const r = parseReference(text);
      expect(r.fullString()).toBe(full);
      expect(r.toString()).toBe(familiar);
    });
  }
  test("the digest decides what is fetched", () => {
    expect(parseReference(`x:t@${D}`).manifestRef).toBe(D);
    expect(parseReference("x:t").manifestRef).toBe("t");
  });
  const bad: [string, RegExp][] = [
    ["", /empty/],
    ["Alpine", /lowercase/],
    ["alpine:", /tag ""/],
    ["alpine:-x", /tag "-x"/],
    [`alpine:${"t".repeat(129)}`, /1 to 128/],
    ["x@sha256:abc", /not a digest/],
    [`x@sha256:${"a".repeat(63)}`, /not a digest|64/],
    [`x@sha256:${"A".repeat(64)}`, /lowercase/],
    [`x@md5:${"a".repeat(32)}`, /not supported/],
    ["a//b", /not a repository name/],
    ["a/b_", /not a repository name/],
    ["-a", /not a repository name/],
    ["host:port:x/y", /not a registry host/],
    [`a/${"b".repeat(260)}`, /more than 255/],
    ["a".repeat(64).replace(/a/g, "f"), /image id/],
    ["a b", /not a repository name|tag/],
  ];
  for (const [text, re] of bad) {
    test(`refuses ${JSON.stringify(text.slice(0, 40))}`, () => {
      expect(() => parseReference(text)).toThrow(re);
      try {
        parseReference(text);
      } catch (e) {
        expect((e as Error).message).not.toContain("\n");
        expect((e as Error).message).toStartWith("invalid image reference");
      }
    });
  }
});

describe("registryHost and mirrors", () => {
  test("docker.io is registry-1.docker.io unless mirrored", () => {
    const home = tempDir("nsbox-ref-");
    expect(registryHost(parseReference("alpine"), { HOME: home })).toBe("registry-1.docker.io");
    expect(registryHost(parseReference("alpine"), { HOME: home, NSBOX_REGISTRY_MIRROR: "mirror.local:5000" })).toBe("mirror.local:5000");
    expect(registryHost(parseReference("quay.io/x"), { HOME: home, NSBOX_REGISTRY_MIRROR: "mirror.local:5000" })).toBe("quay.io");
    mkdirSync(join(home, ".config/nsbox"), { recursive: true });
    writeFileSync(join(home, ".config/nsbox/registries.json"), JSON.stringify({ mirrors: { "docker.io": "m.example:1" } }));
    // /etc/nsbox/registries.json would come first: the test host has none
    expect(registryHost(parseReference("alpine"), { HOME: home })).toBe("m.example:1");
    writeFileSync(join(home, ".config/nsbox/registries.json"), "{");
    expect(() => registryHost(parseReference("alpine"), { HOME: home })).toThrow(/not valid JSON/);
  });
  test("local hosts", () => {
    for (const h of ["localhost", "localhost:5000", "127.0.0.1:1", "127.1.2.3", "[::1]:5000", "::1"]) expect(isLocalHost(h)).toBe(true);
    for (const h of ["example.com", "10.0.0.1:5000", "localhost.example.com", "[::2]:5000"]) expect(isLocalHost(h)).toBe(false);
  });
});

describe("WWW-Authenticate", () => {
  test("bearer with quoted commas", () => {
    const c = parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push"');
    expect(c).toEqual({
      scheme: "bearer",
      params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/alpine:pull,push" },
    });
  });
  test("basic", () => {
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: "basic", params: { realm: "Registry Realm" } });
    expect(parseChallenge(null)).toBeUndefined();
  });
  test("credentials never go to a plain-http token realm of a TLS registry (refused before any request)", async () => {
    const client = new RegistryClient("registry.example.com", "x", { credentials: { username: "u", password: "p" } });
    await expect(client.authenticate({ scheme: "bearer", params: { realm: "http://auth.example.com/token" } })).rejects.toThrow(
      /token realm http:\/\/auth.example.com is not https: refusing to send credentials/,
    );
    const anonymous = new RegistryClient("registry.example.com", "x", {});
    await expect(anonymous.authenticate({ scheme: "basic", params: {} })).rejects.toThrow(/log in first/);
  });
});

describe("manifests and platforms", () => {
  const entry = (architecture: string, variant?: string, os = "linux"): Descriptor => ({
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: D,
    size: 1,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
  });
  test("choose, with arm64's default variant", () => {
    expect(choosePlatform([entry("amd64"), entry("arm64")], parsePlatform("linux/arm64/v8"), "x").platform?.architecture).toBe("arm64");
    expect(choosePlatform([entry("amd64"), entry("arm64", "v8")], parsePlatform("linux/arm64"), "x").platform?.variant).toBe("v8");
    expect(choosePlatform([entry("arm", "v6"), entry("arm", "v7")], parsePlatform("linux/arm/v7"), "x").platform?.variant).toBe("v7");
  });
  test("absent platform: the sentence of the issue", () => {
    expect(() => choosePlatform([entry("amd64"), entry("386"), entry("unknown", undefined, "unknown")], parsePlatform("linux/arm64"), "alpine:3.20")).toThrow(
      "no linux/arm64 image in alpine:3.20; it has: linux/amd64, linux/386",
    );
  });
  test("bad platforms", () => {
    expect(() => parsePlatform("linux")).toThrow(/OS\/ARCH/);
    expect(() => parsePlatform("linux/amd64/v1/x")).toThrow(/OS\/ARCH/);
    expect(parsePlatform("linux/x86_64")).toEqual({ os: "linux", architecture: "amd64" });
  });
  test("schema 1 is refused in one line", () => {
    const bytes = new TextEncoder().encode(JSON.stringify({ schemaVersion: 1, name: "x", fsLayers: [] }));
    expect(() => parseManifest(bytes, "application/vnd.docker.distribution.manifest.v1+prettyjws", "x:1")).toThrow(/schema 1/);
  });
  test("digests in descriptors must be sha256/sha512 hex (no path tricks)", () => {
    const m = { schemaVersion: 2, config: { mediaType: "x", digest: "sha256:../../etc", size: 1 }, layers: [] };
    expect(() => parseManifest(new TextEncoder().encode(JSON.stringify(m)), null, "x:1")).toThrow(/not sha256/);
  });
});

describe("credentials files", () => {
  test("login writes docker's format, 0600; logout removes", () => {
    const dir = tempDir("nsbox-auth-");
    const env = { HOME: dir, DOCKER_CONFIG: join(dir, "docker") };
    mkdirSync(env.DOCKER_CONFIG);
    writeFileSync(join(env.DOCKER_CONFIG, "config.json"), JSON.stringify({ credsStore: "x", auths: { "other:1": { auth: btoa("a:b") } } }));
    const file = storeCredentials("localhost:5000", { username: "u", password: "p:w" }, env);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const cfg = JSON.parse(readFileSync(file, "utf8"));
    expect(cfg.credsStore).toBe("x");
    expect(cfg.auths["localhost:5000"].auth).toBe(btoa("u:p:w"));
    expect(credentialsFor("localhost:5000", env)).toEqual({ username: "u", password: "p:w" });
    storeCredentials("docker.io", { username: "h", password: "q" }, env);
    expect(JSON.parse(readFileSync(file, "utf8")).auths["https://index.docker.io/v1/"]).toBeDefined();
    expect(credentialsFor("index.docker.io", env)?.username).toBe("h");
    expect(removeCredentials("localhost:5000", env)).toBe(true);
    expect(removeCredentials("localhost:5000", env)).toBe(false);
    expect(credentialsFor("other:1", env)).toEqual({ username: "a", password: "b" });
  });
  test("podman's auth.json and REGISTRY_AUTH_FILE are read first", () => {
    const dir = tempDir("nsbox-auth-");
    mkdirSync(join(dir, "run/containers"), { recursive: true });
    writeFileSync(join(dir, "run/containers/auth.json"), JSON.stringify({ auths: { "r:1": { auth: btoa("podman:1") } } }));
    writeFileSync(join(dir, "ra.json"), JSON.stringify({ auths: { "https://r:1/v2/": { auth: btoa("file:2") } } }));
    expect(credentialsFor("r:1", { HOME: dir, XDG_RUNTIME_DIR: join(dir, "run") })?.username).toBe("podman");
    expect(credentialsFor("r:1", { HOME: dir, XDG_RUNTIME_DIR: join(dir, "run"), REGISTRY_AUTH_FILE: join(dir, "ra.json") })?.username).toBe("file");
  });
});
