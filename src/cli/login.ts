/**
 * `nsbox login [-u USER] [-p PASS | --password-stdin] REGISTRY` and `nsbox logout REGISTRY`:
 * credentials checked against the registry, then kept in docker's config.json
 * (see src/image/auth.ts for the files read and written).
 */
import { fail, NsboxError } from "../errors.ts";
import { credentialsFor, removeCredentials, storeCredentials } from "../image/auth.ts";
import { DOCKER_HUB, DOCKER_HUB_API } from "../image/reference.ts";
import { RegistryClient } from "../image/registry/client.ts";
import { log as consola } from "../log.ts";
import { bool, defineCommand, type FlagsDef, parseFlags, str, toCitty } from "./args.ts";

export const loginFlags = {
  registry: { type: "positional", description: "the registry: HOST[:PORT] (docker.io for Docker Hub)", required: true },
  username: { type: "string", alias: "u", description: "the user name", valueHint: "USER" },
  password: { type: "string", alias: "p", description: "the password (visible to other users in ps: prefer --password-stdin)", valueHint: "PASS" },
  "password-stdin": { type: "boolean", description: "read the password from standard input" },
  "tls-verify": { type: "boolean", description: "verify the registry's certificate and refuse plain http (default true)" },
} satisfies FlagsDef;

export const loginCommand = defineCommand({
  meta: { name: "login", description: "Log in to a registry (credentials kept in ~/.docker/config.json)" },
  args: () => toCitty(loginFlags),
});

export const logoutFlags = {
  registry: { type: "positional", description: "the registry: HOST[:PORT]", required: true },
} satisfies FlagsDef;

export const logoutCommand = defineCommand({
  meta: { name: "logout", description: "Remove a registry's stored credentials" },
  args: () => toCitty(logoutFlags),
});

/** "https://host:5000/" or "host:5000" -> "host:5000"; docker.io stays docker.io. */
function registryArg(text: string): string {
  const host = text.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, "");
  if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:[0-9]+)?$/.test(host)) fail(`invalid registry "${text}": use HOST[:PORT], e.g. localhost:5000 or docker.io`);
  return host === "index.docker.io" ? DOCKER_HUB : host;
}

async function readStdin(): Promise<string> {
  const text = await Bun.stdin.text();
  return text.replace(/\r?\n$/, "");
}

export async function login(argv: string[]): Promise<number> {
  const p = parseFlags("login", argv, loginFlags);
  const registry = registryArg(p.positionals[0] as string);
  let username = str(p.flags.username);
  let password = str(p.flags.password);
  if (bool(p.flags["password-stdin"])) {
    if (password !== undefined) fail("--password and --password-stdin are exclusive: give one");
    if (!username) fail("--password-stdin needs --username (-u USER)");
    password = await readStdin();
  }
  if (!username || password === undefined) {
    // without both, the stored credentials are checked again (docker does the same)
    const stored = credentialsFor(registry);
    if (!stored || (username && username !== stored.username)) fail(`nsbox login needs -u USER and a password (-p PASS or --password-stdin) for ${registry}`);
    username = stored.username;
    password = stored.password;
  }
  if (password === "") fail("the password is empty");
  const creds = { username, password };
  const host = registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
  const client = new RegistryClient(host, "", { credentials: creds, tlsVerify: p.flags["tls-verify"] === false ? false : undefined });
  try {
    await client.ping();
  } catch (e) {
    const msg = e instanceof NsboxError ? e.message : String(e);
    if (/\b401\b/.test(msg)) fail(`login to ${registry} failed: 401 unauthorized (wrong user or password)`);
    fail(`login to ${registry} failed: ${msg}`);
  }
  const file = storeCredentials(registry, creds);
  consola.success(`login succeeded: credentials for ${registry} saved in ${file}`);
  return 0;
}

export async function logout(argv: string[]): Promise<number> {
  const p = parseFlags("logout", argv, logoutFlags);
  const registry = registryArg(p.positionals[0] as string);
  if (!removeCredentials(registry)) fail(`not logged in to ${registry}`);
  consola.success(`removed the credentials for ${registry}`);
  return 0;
}
