// The shim and the helper, built by the Makefile and embedded as base64 text (see native/embedded.ts).
declare module "*.b64" {
  const text: string;
  export default text;
}
