// The WebAssembly types the declarations name, for compilers without the DOM library (as
// empty interfaces they merge with lib.dom's when it is present). Referenced from each entry's
// declarations by the build.
declare namespace WebAssembly {
  interface Module {}
  interface Memory {}
  interface Instance {}
}
// HttpBackend's fetch option names an AbortSignal (lib.dom's, or Node's global one).
interface AbortSignal {}
