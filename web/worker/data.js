// The worker's data: gzipped IDX files fetched with progress events and decompressed by the browser
// (DecompressionStream), the IDX headers checked, each data set kept once ('mnist:t10k' -> {images:
// pixel bytes, labels, count}), and test images as pixel values in [0, 1] for the model calls.
import { post } from './protocol.js';

export const P = 784;
const datasets = new Map();

export async function fetchBytes(url, label) {
  // A network failure (offline, the server gone) is a TypeError with the browser's own words ('Failed
  // to fetch'); say what could not be downloaded and why, and end the progress line either way.
  const unreachable = (e) => new Error(`${label}: cannot download ${url}: ${self.navigator?.onLine === false
    ? 'this device is offline' : 'the network or the server cannot be reached'} (${e.message})`);
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    post('download', { label, loaded: 0, total: 0, done: true });
    throw unreachable(e);
  }
  if (!response.ok) {
    post('download', { label, loaded: 0, total: 0, done: true });
    throw new Error(`${label}: HTTP ${response.status} for ${url}`);
  }
  const total = Number(response.headers.get('content-length')) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      post('download', { label, loaded, total });
    }
  } catch (e) {
    throw unreachable(e);  // the connection dropped part-way
  } finally {
    post('download', { label, loaded, total, done: true });
  }
  let bytes = concat(chunks, loaded);
  if (url.endsWith('.gz')) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return bytes;
}

function concat(chunks, n) {
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

function parseIdx(bytes, wantImages, what) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = bytes.length >= 8 ? view.getUint32(0) : 0;
  if (wantImages ? magic !== 0x803 : magic !== 0x801) throw new Error(`${what}: not an IDX ${wantImages ? 'image' : 'label'} file`);
  const count = view.getUint32(4);
  const header = wantImages ? 16 : 8;
  const per = wantImages ? view.getUint32(8) * view.getUint32(12) : 1;
  if (wantImages && per !== P) throw new Error(`${what}: images are not 28x28`);
  if (bytes.length !== header + count * per) throw new Error(`${what}: truncated (${bytes.length} bytes)`);
  return { count, data: bytes.subarray(header) };
}

// name 'mnist' or 'fashion'; part 't10k' (test) or 'train'. Raw IDX bytes are kept for the trainer.
export async function dataset(name, part) {
  const key = `${name}:${part}`;
  if (datasets.has(key)) return datasets.get(key);
  const base = `data/${name}/${part}`;
  const label = `${name === 'mnist' ? 'MNIST' : 'Fashion-MNIST'} ${part === 'train' ? 'training' : 'test'} set`;
  const [imageBytes, labelBytes] = await Promise.all([
    fetchBytes(`${base}-images-idx3-ubyte.gz`, label),
    fetchBytes(`${base}-labels-idx1-ubyte.gz`, `${label} labels`),
  ]);
  const images = parseIdx(imageBytes, true, label);
  const labels = parseIdx(labelBytes, false, `${label} labels`);
  const set = { images: images.data, labels: labels.data, count: images.count, imageBytes, labelBytes };
  datasets.set(key, set);
  return set;
}

// Images `indices` of a data set as pixel values in [0, 1] [indices.length * P].
export function pixelsOf(set, indices) {
  const out = new Float32Array(indices.length * P);
  indices.forEach((i, r) => {
    const src = set.images.subarray(i * P, (i + 1) * P);
    for (let p = 0; p < P; p++) out[r * P + p] = src[p] / 255;
  });
  return out;
}

// The first n images' indices in chunks of `size` (the model calls' batches).
export function* chunks(n, size) {
  for (let first = 0; first < n; first += size) yield Array.from({ length: Math.min(size, n - first) }, (_, i) => first + i);
}
