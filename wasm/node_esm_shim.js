// Placed before Emscripten's glue (--extern-pre-js), at the top of the ES module. Emscripten 3.1.6
// writes its node code for CommonJS: it reads `__dirname` (and `require` for files) unguarded, and an ES
// module has neither, so loading under node would throw a ReferenceError. In browsers and workers both
// stay unused. `require` exists only on node >= 20.16 (process.getBuiltinModule); with an older node the
// caller passes the wasm bytes (loadLatentLab({wasmBinary})), so nothing is read through it.
var __dirname = typeof process == 'object' && import.meta.url.startsWith('file:')
  ? decodeURIComponent(new URL('.', import.meta.url).pathname) : '';
var require = typeof process == 'object' && typeof process.getBuiltinModule == 'function'
  ? process.getBuiltinModule('module').createRequire(import.meta.url) : undefined;
