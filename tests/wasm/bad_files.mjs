// Bad model files shared by the node tests of the JS API (tests/wasm/bindings.test.mjs) and the browser
// test (tests/browser/page.test.mjs).

// A safetensors file of a few hundred bytes whose config asks for a 4096-16384-4096 VAE (5 GB with its
// training state), holding one small tensor: the config must be checked against the file's tensors
// before anything of the config's size is allocated.
export function hugeConfigFile() {
  const config = JSON.stringify({ kind: 'vae', input: 4096, hidden: 16384, latent: 4096 });
  const header = JSON.stringify({
    __metadata__: { 'latentlab.model': 'vae', 'latentlab.config': config },
    'fc1.weight': { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
  });
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
  return Buffer.concat([head, Buffer.from(header), Buffer.alloc(16)]);
}
