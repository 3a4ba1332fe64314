// The shim and the helper, built by the Makefile and embedded as base64 strings (see native/embedded.ts).
declare module "*.b64.ts" {
  const text: string;
  export default text;
}
