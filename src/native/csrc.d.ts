// The shim and the helper, built by the Makefile and embedded as hex strings (see native/embedded.ts).
declare module "*.hex.ts" {
  const text: string;
  export default text;
  /** sha256 of the embedded file, in hex */
  export const sha256: string;
}
