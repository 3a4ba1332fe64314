/**
 * Small string tests written out instead of regular expressions, for the code
 * every `nsbox run` and `exec` passes through: a program's first regular
 * expression costs Bun ~0.7 MiB (the engine's compiler and matcher pages) and
 * each expression its compile (bench/trace-notes.md). Rare paths (image
 * references, the OCI config, error messages) keep their expressions.
 */

/** One or more ASCII digits and nothing else. */
export function isDigits(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return text.length > 0;
}

/** Lowercase hexadecimal digits only (an id, a digest), of exactly `length` of them when given. */
export function isHex(text: string, length?: number): boolean {
  if (length !== undefined && text.length !== length) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return text.length > 0;
}

/** A flag's name: "--root" and "-root" give "root" (one or two dashes, as /^--?/). */
export function withoutDashes(arg: string): string {
  return arg.startsWith("--") ? arg.slice(2) : arg.startsWith("-") ? arg.slice(1) : arg;
}

/** The value of the line "KEY VALUE" in a cgroup file (memory.events, memory.oom_control), when VALUE is a number. */
export function keyedNumber(text: string, key: string): number | undefined {
  for (const line of text.split("\n"))
    if (line.startsWith(`${key} `)) {
      const v = line.endsWith("\r") ? line.slice(key.length + 1, -1) : line.slice(key.length + 1);
      if (isDigits(v)) return Number(v);
    }
  return undefined;
}

/** What follows "nameserver" and blanks on a resolv.conf line, or undefined when it is no nameserver line. */
export function nameserverOf(line: string): string | undefined {
  const t = line.trimStart();
  if (!t.startsWith("nameserver")) return undefined;
  const rest = t.slice("nameserver".length);
  const value = rest.trimStart();
  return value.length < rest.length ? value : undefined;
}
