/**
 * A client of one repository on one registry, over the distribution API v2
 * (https://github.com/opencontainers/distribution-spec), with Bun's fetch.
 *
 * Transport: HTTPS, verified against the system's CA store. Plain http is used
 * only for localhost/127.0.0.0/8/::1 registries and with --tls-verify=false, and
 * only when HTTPS does not answer there: as docker does for its insecure
 * registries, https is tried first (without verifying the certificate), then
 * http. The scheme that worked is kept for the rest of the pull.
 *
 * Authentication, on a 401 with WWW-Authenticate:
 *   Bearer realm,service[,scope] -> GET realm?service=..&scope=repository:NAME:pull
 *     (anonymous, or with the stored credentials as basic auth) -> retry with the token
 *   Basic -> retry with the stored credentials
 * Redirects (blobs often live in object storage) are followed by hand, so the
 * registry's Authorization header never goes to another host.
 */
import { existsSync, readFileSync } from "node:fs";
import { fail, NsboxError } from "../../errors.ts";
import type { Credentials } from "../auth.ts";
import { isLocalHost } from "../reference.ts";
import { type Challenge, parseChallenge } from "./challenge.ts";

export interface ClientOptions {
  /** false: accept any certificate and allow plain http (podman's --tls-verify=false) */
  tlsVerify?: boolean;
  credentials?: Credentials;
  signal?: AbortSignal;
  /** for messages: "alpine:3.20" */
  display?: string;
}

const MAX_REDIRECTS = 5;
const CA_BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];
let systemCA: string | undefined | null = null;

/**
 * The system's CA bundle (Debian's ca-certificates, or Fedora's), read once;
 * SSL_CERT_FILE names another, as for OpenSSL and Go programs; undefined: Bun's own roots.
 */
function systemCAs(): string | undefined {
  if (systemCA === null) {
    const file = process.env.SSL_CERT_FILE || CA_BUNDLES.find((f) => existsSync(f));
    systemCA = file ? readFileSync(file, "utf8") : undefined;
  }
  return systemCA;
}

/** A response with a status the caller did not expect, as one line. */
export class RegistryHttpError extends NsboxError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** The first error code and message of a registry's JSON error body ({"errors":[{"code","message"}]}). */
async function errorDetail(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const e = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
    if (e?.code) return `${e.code}${e.message ? `: ${e.message}` : ""}`;
  } catch {}
  return text.trim().split("\n")[0]?.slice(0, 200) ?? "";
}

export class RegistryClient {
  private scheme: "https" | "http" | undefined;
  private authorization: string | undefined;
  private readonly insecure: boolean;

  constructor(
    /** host[:port] of the API */
    readonly host: string,
    /** repository path, e.g. library/alpine; "" for a bare ping */
    readonly repository: string,
    private readonly opts: ClientOptions = {},
  ) {
    this.insecure = opts.tlsVerify === false || isLocalHost(host);
  }

  private tlsFor(scheme: string) {
    if (scheme !== "https") return undefined;
    if (this.insecure) return { rejectUnauthorized: false };
    const ca = systemCAs();
    return ca ? { ca } : undefined;
  }

  /** fetch() of one URL with nsbox's TLS rules; a connection failure is an Error with the host named. */
  private async raw(url: string, headers: Record<string, string>, signal = this.opts.signal): Promise<Response> {
    const scheme = url.startsWith("http:") ? "http" : "https";
    return await fetch(url, {
      headers,
      redirect: "manual",
      signal,
      tls: this.tlsFor(scheme),
      // a pull of a large layer may take long: no overall timeout, the stream is watched instead
      timeout: false,
    } as RequestInit);
  }

  /** Picks https or (for insecure registries, when https fails to connect) http. */
  private async base(path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    if (this.scheme) return await this.raw(`${this.scheme}://${this.host}${path}`, headers, signal);
    try {
      const res = await this.raw(`https://${this.host}${path}`, headers, signal);
      this.scheme = "https";
      return res;
    } catch (e) {
      if (this.opts.signal?.aborted || !this.insecure) throw connectError(this.host, e, this.insecure);
    }
    try {
      const res = await this.raw(`http://${this.host}${path}`, headers, signal);
      this.scheme = "http";
      return res;
    } catch (e) {
      throw connectError(this.host, e, true);
    }
  }

  /** GET path on the registry with authentication and redirects handled; `signal` replaces the client's for this request. */
  async get(path: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    let res = await this.follow(path, headers, signal);
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get("www-authenticate"));
    await res.body?.cancel().catch(() => {});
    if (!challenge) fail(`${this.where()}: 401 unauthorized, and the registry did not say how to authenticate`);
    await this.authenticate(challenge);
    res = await this.follow(path, headers, signal);
    if (res.status === 401) {
      await res.body?.cancel().catch(() => {});
      fail(this.unauthorized());
    }
    return res;
  }

  private async follow(path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    const auth: Record<string, string> = this.authorization ? { authorization: this.authorization } : {};
    let res = await this.base(path, { ...headers, ...auth }, signal ?? this.opts.signal);
    let url = `${this.scheme}://${this.host}${path}`;
    const origin = new URL(url).origin;
    for (let hops = 0; res.status >= 300 && res.status < 400 && res.headers.get("location"); hops++) {
      if (hops >= MAX_REDIRECTS) fail(`${this.where()}: more than ${MAX_REDIRECTS} redirects for ${path}`);
      await res.body?.cancel().catch(() => {});
      url = new URL(res.headers.get("location") as string, url).toString();
      const sameOrigin = new URL(url).origin === origin;
      try {
        res = await this.raw(url, sameOrigin ? { ...headers, ...auth } : headers, signal ?? this.opts.signal);
      } catch (e) {
        throw connectError(new URL(url).host, e, this.insecure);
      }
    }
    return res;
  }

  /** Answers a challenge: a bearer token from the realm, or basic credentials. */
  async authenticate(challenge: Challenge, scope: string | undefined = this.repository ? `repository:${this.repository}:pull` : undefined) {
    const creds = this.opts.credentials;
    if (challenge.scheme === "basic") {
      if (!creds) fail(this.unauthorized());
      this.authorization = `Basic ${btoa(`${creds.username}:${creds.password}`)}`;
      return;
    }
    if (challenge.scheme !== "bearer")
      fail(`${this.where()}: the registry asks for "${challenge.scheme}" authentication, which nsbox does not speak (Bearer or Basic)`);
    const realm = challenge.params.realm;
    if (!realm) fail(`${this.where()}: the registry's Bearer challenge has no realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      fail(`${this.where()}: the registry's token realm "${realm}" is not a URL`);
    }
    // credentials never travel in clear text to a token server the registry names, unless the user allowed plain http
    if (creds && url.protocol !== "https:" && !this.insecure)
      fail(`${this.where()}: the registry's token realm ${url.origin} is not https: refusing to send credentials there (--tls-verify=false allows it)`);
    if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
    const wanted = challenge.params.scope ?? scope;
    if (wanted) url.searchParams.set("scope", wanted);
    if (creds) url.searchParams.set("account", creds.username);
    const headers: Record<string, string> = creds ? { authorization: `Basic ${btoa(`${creds.username}:${creds.password}`)}` } : {};
    let res: Response;
    try {
      res = await this.raw(url.toString(), headers);
    } catch (e) {
      throw connectError(url.host, e, this.insecure);
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel().catch(() => {});
      fail(creds ? `${this.host}: ${res.status} unauthorized (wrong user or password)` : this.unauthorized());
    }
    if (!res.ok) fail(`${this.where()}: the token server ${url.host} answered ${res.status} ${await errorDetail(res)}`);
    let token: unknown;
    try {
      const body = (await res.json()) as { token?: unknown; access_token?: unknown };
      token = body.token ?? body.access_token;
    } catch {}
    if (typeof token !== "string" || token === "") fail(`${this.where()}: the token server ${url.host} sent no token`);
    this.authorization = `Bearer ${token}`;
  }

  /** GET /v2/: reachable, speaks the API, and (with credentials) accepts them. */
  async ping(): Promise<void> {
    const res = await this.get("/v2/");
    await res.body?.cancel().catch(() => {});
    if (res.status === 404) fail(`${this.host} is not a container registry: GET /v2/ answered 404`);
    if (!res.ok) fail(`${this.host}: GET /v2/ answered ${res.status}`);
  }

  /** The message for a request the registry refused even after authenticating. */
  unauthorized(): string {
    const what = this.opts.display ?? this.host;
    if (this.opts.credentials)
      return `${this.host}: 401 unauthorized for ${what} (wrong user or password, or no access to ${this.repository || "the registry"})`;
    return `${this.host}: 401 unauthorized for ${what}: log in first (nsbox login ${this.host})`;
  }

  private where(): string {
    return this.opts.display ? `${this.opts.display} (${this.host})` : this.host;
  }

  /** A response that is neither OK nor expected, turned into one line. */
  async statusError(res: Response, what: string): Promise<never> {
    const detail = await errorDetail(res);
    throw new RegistryHttpError(
      `${what}: ${this.host} answered ${res.status} ${res.statusText || ""}${detail ? ` (${detail})` : ""}`.replace(/ +/g, " "),
      res.status,
    );
  }
}

/** A network error in a few words: "connection refused", "ECONNRESET connection reset". */
export function netReason(e: unknown): string {
  const err = e as { code?: string; message?: string };
  const known: Record<string, string> = {
    ECONNREFUSED: "connection refused",
    ECONNRESET: "connection reset",
    ETIMEDOUT: "timed out",
    ENOTFOUND: "host not found",
    EHOSTUNREACH: "host unreachable",
    ENETUNREACH: "network unreachable",
  };
  if (err?.code && known[err.code]) return known[err.code] as string;
  // Bun's messages add advice after the first sentence ("For more information, pass verbose...")
  const first = (err?.message ?? String(e)).split(/\. /)[0]?.replace(/\s+/g, " ") ?? "";
  return err?.code && !first.startsWith(err.code) ? `${err.code}: ${first}` : first;
}

/** "cannot reach registry HOST: connection refused" (with the fix for a certificate problem). */
function connectError(host: string, e: unknown, insecure: boolean): Error {
  if (e instanceof NsboxError) return e;
  if ((e as Error)?.name === "AbortError") return e as Error;
  const why = netReason(e);
  const hint =
    !insecure && /cert|ssl|tls|self.signed|verify/i.test(why) ? " (a registry without a valid certificate, or on plain http, needs --tls-verify=false)" : "";
  return new NsboxError(`cannot reach registry ${host}: ${why}${hint}`);
}
