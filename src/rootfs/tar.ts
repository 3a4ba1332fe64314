/** The tar extractor lives in ./tar/ (format, policy, reader, writer, source); this keeps the import path. */
export { type ExtractOptions, extractTar, TarError } from "./tar/index.ts";
