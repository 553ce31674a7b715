// The page state: one table of properties, each with a default and a type, mirrored in the URL's query
// string (only values that differ from their defaults), so a link reproduces the view
// (the tensorflow/playground way). Panels read `state.x`, change it with `set({x: ...})`, and
// subscribe to changes with `onChange`.
const T = {
  // An empty field is no number (Number('') would be 0: a cleared seed must not silently become seed 0).
  int: (lo, hi) => ({ parse: (s) => { const v = String(s).trim() === '' ? NaN : Number(s); return Number.isInteger(v) && v >= lo && v <= hi ? v : undefined; } }),
  num: (lo, hi) => ({ parse: (s) => { const v = String(s).trim() === '' ? NaN : Number(s); return Number.isFinite(v) && v >= lo && v <= hi ? v : undefined; } }),
  oneOf: (...values) => ({ parse: (s) => (values.includes(s) ? s : undefined) }),
  list: (pattern) => ({ parse: (s) => (s.split(',').every((x) => pattern.test(x)) ? s.split(',').filter(Boolean) : undefined), format: (v) => v.join(',') }),
  bool: () => ({ parse: (s) => (s === '1' ? true : s === '0' ? false : undefined), format: (v) => (v ? '1' : '0') }),
};

export const schema = {
  // Draw
  models: { def: ['ae_2d', 'vae_2d', 'dae', 'vqvae'], ...T.list(/^[a-z0-9_]+$/), help: 'models reconstructing the drawing' },
  digit: { def: 0, ...T.int(-1, 9999), help: 'number of the test image shown on the pad (0-9999; -1: the drawing)' },
  data: { def: 'mnist', ...T.oneOf('mnist', 'fashion'), help: 'data set of the test images and of training' },
  // Latent space
  latent: { def: 'vae_2d', ...T.oneOf('vae_2d', 'ae_2d'), help: 'model of the latent-space view' },
  grid: { def: 15, ...T.int(5, 25), help: 'manifold grid size' },
  // Interpolate
  // A 0 and a 9 (test images #71 and #73): the plain AE's path between them crosses blurs, the VAE's
  // morphs through digit shapes, as the panel's text says.
  from: { def: 71, ...T.int(0, 9999), help: 'number of the test image at one end' },
  to: { def: 73, ...T.int(-1, 9999), help: 'number of the test image at the other end (-1: the drawing)' },
  // Sample
  temperature: { def: 1, ...T.num(0.05, 3), help: 'sampling temperature' },
  seed: { def: 1, ...T.int(0, 1e9), help: 'sampling seed' },
  pclass: { def: -1, ...T.int(-1, 9), help: 'digit the VQ-VAE prior draws (-1: each in turn); a class-conditional prior only' },
  sampler: { def: 'vae_2d', ...T.oneOf('vae_2d', 'vae_mlp', 'conv_vae', 'beta_vae'), help: 'VAE sampled from N(0, I)' },
  // Train: the kind here; its settings come from the core's tables (addCoreSettings, below).
  kind: { def: 'vae', ...T.oneOf('vae'), help: 'model kind trained' },
  // Layout (embedding): which panels show
  panels: { def: ['draw', 'latent', 'interpolate', 'sample', 'vq', 'train'], ...T.list(/^(draw|latent|interpolate|sample|vq|train)$/), help: 'panels shown' },
  embed: { def: false, ...T.bool(), help: 'embedded: no header or footer' },
};

export const state = {};

// The Train form's settings from the core (the bindings' lab.settings() and lab.kinds()): one key per
// training setting, architecture size and kind hyperparameter, with the core's default and range, so the
// page, the CLI and the core's validation share one table. A name that is already a page key ('seed' of
// sampling, 'latent' of the latent view) gets a 't' in front ('tseed', 'tlatent'). A hyperparameter
// shared by kinds with the same default and range ('tied') has one key; one that another kind defines
// with another default or range ('channels': the judge's 16, the PixelCNN's 64) gets a key of its own
// for the later kind ('channels_pixelcnn_prior'), so no kind trains with another's default. Returns
// {name -> state key, 'kind.name' -> the kind's key}; reads the new keys (and 'kind', now of every kind)
// from the URL.
export const settingKeys = new Map();
export function addCoreSettings({ train, sizes }, kinds, search = location.search) {
  const specOf = (s) => (s.type === 'choice' ? T.oneOf(...s.choices)
    : s.type === 'int' || s.integer ? T.int(s.min, s.max) : T.num(s.min, s.max));
  const define = (key, s) => { schema[key] = { def: s.default, ...specOf(s), help: s.help, setting: s }; };
  const add = (s, kind) => {
    const shared = settingKeys.get(s.name);
    if (shared) {
      const o = schema[shared].setting;
      const same = o.default === s.default && o.min === s.min && o.max === s.max;
      if (kind) settingKeys.set(`${kind}.${s.name}`, same ? shared : `${s.name}_${kind}`);
      if (kind && !same) define(`${s.name}_${kind}`, s);
      return;
    }
    const key = s.name in schema ? `t${s.name}` : s.name;
    settingKeys.set(s.name, key);
    if (kind) settingKeys.set(`${kind}.${s.name}`, key);
    define(key, s);
  };
  for (const s of train) add(s);
  for (const s of sizes) add(s);
  for (const k of kinds) for (const hp of k.hyper) add(hp, k.name);
  schema.kind = { ...schema.kind, ...T.oneOf(...kinds.map((k) => k.name)) };
  readUrl(search, ['kind', ...new Set(settingKeys.values())]);
  return settingKeys;
}
const listeners = new Set();

function format(key, value) {
  const f = schema[key].format;
  return f ? f(value) : String(value);
}

function same(a, b) {
  return Array.isArray(a) ? Array.isArray(b) && a.join(',') === b.join(',') : a === b;
}

export function readUrl(search = location.search, keys = Object.keys(schema)) {
  const params = new URLSearchParams(search);
  for (const key of keys) {
    const spec = schema[key];
    const raw = params.get(key);
    const v = raw === null ? undefined : spec.parse(raw);
    state[key] = v === undefined ? (Array.isArray(spec.def) ? [...spec.def] : spec.def) : v;
  }
}

export function writeUrl() {
  const params = new URLSearchParams();
  for (const [key, spec] of Object.entries(schema)) {
    if (!same(state[key], spec.def)) params.set(key, format(key, state[key]));
  }
  const q = params.toString().replace(/%2C/g, ',');
  history.replaceState(null, '', q ? `?${q}` : location.pathname);
}

export function set(changes) {
  const changed = [];
  for (const [key, value] of Object.entries(changes)) {
    if (!(key in schema)) throw new Error(`unknown state key ${key}`);
    if (!same(state[key], value)) { state[key] = value; changed.push(key); }
  }
  if (!changed.length) return;
  writeUrl();
  for (const fn of listeners) fn(changed);
}

export function onChange(fn) {
  listeners.add(fn);
}
