/** Bad security settings: the CLI prints the message as one line and exits 125. */
import { NsboxError } from "../errors.ts";

export class SecurityError extends NsboxError {}
