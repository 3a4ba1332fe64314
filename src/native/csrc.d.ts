// The shim is a static executable built by the Makefile and embedded as a file.
declare module "*/nsbox-shim" {
  const path: string;
  export default path;
}
// The helper is a shared object built by the Makefile and embedded as a file (see native/helper.ts).
declare module "*/nsbox-helper.so" {
  const path: string;
  export default path;
}
