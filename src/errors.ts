/**
 * The one error type of nsbox: a sentence for the user and the exit code a script
 * can trust (docker's convention, see README "Exit codes").
 */
export const EXIT = {
  /** nsbox itself failed: bad input, a kernel refusal while setting up. */
  NSBOX: 125,
  /** the command exists but could not be executed (permission, format). */
  CANNOT_EXEC: 126,
  /** the command was not found. */
  NOT_FOUND: 127,
} as const;

export class NsboxError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.NSBOX,
  ) {
    super(message);
    this.name = "NsboxError";
  }
}

/** Throws a user-facing error (exit 125 unless told otherwise). */
export function fail(message: string, exitCode: number = EXIT.NSBOX): never {
  throw new NsboxError(message, exitCode);
}

/** The errno name and text of a Node/Bun system error, e.g. "ENOENT (no such file or directory)". */
export function sysMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === "object" && err.code) {
    const text = err.message.replace(/^[A-Z]+: /, "").replace(/,.*$/, "");
    return text || err.code;
  }
  return String(e);
}
