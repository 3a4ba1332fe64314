// The C sources are embedded into the binary as text (see native/helper.ts).
declare module "*.c" {
  const source: string;
  export default source;
}
// The shim is a static executable built by the Makefile and embedded as a file.
declare module "*/nsbox-shim" {
  const path: string;
  export default path;
}
