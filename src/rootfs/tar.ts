/** The tar extractor lives in ./tar/ (format, policy, reader, writer, source); this keeps the old import path. */
export { extractTar, TarError } from "./tar/index.ts";
