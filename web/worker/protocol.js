// The worker's side of the message protocol of client.js: requests {id, op, args} are answered with
// {id, ok, value | error}; events ({event, data}: download progress, training progress, prior-sampling
// frames) are pushed with post(). Typed arrays in a result move to the page instead of being copied.
// Holds no model state: worker.js (the page) and bench_worker.js (bench.html) pass their op tables.

export const post = (event, data, transfer = []) => self.postMessage({ event, data }, transfer);
export const yieldToMessages = () => new Promise((resolve) => setTimeout(resolve, 0));

// Answers every request with ops[op](args) (a value or a promise of one).
export function serve(ops) {
  self.onmessage = async (e) => {
    const { id, op, args } = e.data;
    try {
      if (!Object.hasOwn(ops, op)) throw new Error(`unknown operation '${op}'`);
      const value = await ops[op](args || {});
      self.postMessage({ id, ok: true, value }, transferables(value));
    } catch (err) {
      self.postMessage({ id, ok: false, error: err && err.message ? err.message : String(err) });
    }
  };
}

function transferables(value, out = []) {
  if (!value || typeof value !== 'object') return out;
  if (ArrayBuffer.isView(value)) {
    if (value.byteOffset === 0 && value.byteLength === value.buffer.byteLength && !out.includes(value.buffer)) out.push(value.buffer);
    return out;
  }
  for (const v of Object.values(value)) transferables(v, out);
  return out;
}
