/**
 * Registry credentials in docker's config.json format, as docker and podman keep them:
 *   { "auths": { "HOST[:PORT]": { "auth": base64("USER:PASSWORD") } } }
 *
 * Read from, first match wins: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json
 * (podman's), then $DOCKER_CONFIG/config.json or ~/.docker/config.json (docker's).
 * `nsbox login` writes docker's file (mode 0600, replaced atomically, other keys kept).
 * Docker Hub is stored under docker's own key "https://index.docker.io/v1/".
 * Credential helpers (credsStore, credHelpers) are not run.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { fail } from "../errors.ts";
import { dirname, join } from "../posixpath.ts";
import { DOCKER_HUB } from "./reference.ts";

export interface Credentials {
  username: string;
  password: string;
}

const HUB_KEY = "https://index.docker.io/v1/";
const HUB_ALIASES = new Set([DOCKER_HUB, "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]);

/** The file `nsbox login` writes. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG || join(env.HOME || homedir(), ".docker"), "config.json");
}

/** Every file credentials are read from, in the order they are tried. */
export function authFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(join(env.XDG_RUNTIME_DIR, "containers/auth.json"));
  files.push(dockerConfigPath(env));
  return files;
}

/** "https://index.docker.io/v1/" -> "docker.io"; "https://host:5000/v2/" -> "host:5000". */
export function normalizeRegistry(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, "");
  return HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}

type AuthConfig = { auths?: Record<string, { auth?: string; username?: string; password?: string }>; [k: string]: unknown };

function readConfig(file: string): AuthConfig | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as unknown;
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not a JSON object");
    return parsed as AuthConfig;
  } catch (e) {
    fail(`the credentials file ${file} is not valid JSON (${(e as Error).message}): fix or remove it`);
  }
}

function decode(entry: { auth?: string; username?: string; password?: string }, file: string, key: string): Credentials | undefined {
  if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  if (!entry.auth) return undefined;
  const text = Buffer.from(entry.auth, "base64").toString("utf8");
  const colon = text.indexOf(":");
  if (colon <= 0) fail(`the credentials for "${key}" in ${file} are not base64("USER:PASSWORD"): run nsbox login again`);
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** The stored credentials for a registry (as written in the reference: "docker.io", "localhost:5000"), if any. */
export function credentialsFor(registry: string, env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  const want = normalizeRegistry(registry);
  for (const file of authFiles(env)) {
    const auths = readConfig(file)?.auths;
    if (!auths) continue;
    for (const [key, entry] of Object.entries(auths)) {
      if (normalizeRegistry(key) !== want || !entry) continue;
      const creds = decode(entry, file, key);
      if (creds) return creds;
    }
  }
  return undefined;
}

/** Writes the file atomically with mode 0600: a temp file in the same directory, renamed over it. */
function writeConfig(file: string, config: AuthConfig) {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, `${JSON.stringify(config, null, "\t")}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function keyFor(registry: string): string {
  const host = normalizeRegistry(registry);
  return host === DOCKER_HUB ? HUB_KEY : host;
}

/** Stores credentials for a registry in docker's config.json; returns the file. */
export function storeCredentials(registry: string, creds: Credentials, env: NodeJS.ProcessEnv = process.env): string {
  const file = dockerConfigPath(env);
  const config = readConfig(file) ?? {};
  const auths = { ...(config.auths ?? {}) };
  // one entry per registry: drop other spellings of the same host
  for (const key of Object.keys(auths)) if (normalizeRegistry(key) === normalizeRegistry(registry)) delete auths[key];
  auths[keyFor(registry)] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString("base64") };
  writeConfig(file, { ...config, auths });
  return file;
}

/** Removes a registry's credentials from every file nsbox reads that has them; false when none had. */
export function removeCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): boolean {
  let removed = false;
  for (const file of authFiles(env)) {
    const config = readConfig(file);
    if (!config?.auths) continue;
    const auths = { ...config.auths };
    let changed = false;
    for (const key of Object.keys(auths)) {
      if (normalizeRegistry(key) !== normalizeRegistry(registry)) continue;
      delete auths[key];
      changed = true;
    }
    if (!changed) continue;
    writeConfig(file, { ...config, auths });
    removed = true;
  }
  return removed;
}
