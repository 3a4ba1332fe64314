/**
 * The WWW-Authenticate header of a registry's 401 (RFC 7235), as the distribution
 * spec uses it: `Bearer realm="https://auth.example/token",service="reg",scope="repository:x:pull"`
 * or `Basic realm="Registry Realm"`.
 */
export interface Challenge {
  scheme: "bearer" | "basic" | string;
  params: Record<string, string>;
}

/** The first challenge of the header (registries send one); undefined when there is none. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  // key=value or key="quoted, value"; a quoted value may hold commas and \" escapes
  const re = /([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/gy;
  const rest = m[2] ?? "";
  let p: RegExpExecArray | null;
  re.lastIndex = 0;
  while (re.lastIndex < rest.length && (p = re.exec(rest))) {
    params[(p[1] as string).toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : (p[3] ?? "");
  }
  return { scheme: (m[1] as string).toLowerCase(), params };
}
