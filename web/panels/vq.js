// Panel 5, VQ codes: the 7x7 grid of code indices of the current digit, each cell coloured by its
// code; the codebook (what a grid of only code k decodes to); and code usage (uPlot histogram,
// perplexity, codes used, dead codes). Follows the pretrained VQ-VAE, or the one being trained
// (then it updates live as training runs).
import { h, imageCanvas, drawImages, clamp01, codeColour, fmt } from '../render.js';
import { itemsWord, term } from '../words.js';

export function initVq(app) {
  const { lab, state } = app;
  const root = document.getElementById('panel-vq');
  const gridEl = h('div', { class: 'codegrid', 'data-testid': 'codegrid' });
  const recon = imageCanvas(1, 1, 4, 'pix');
  const book = h('div', { class: 'codebook', 'data-testid': 'codebook' });
  const histBox = h('div', { class: 'hist', 'data-testid': 'usage' });
  const figs = h('div', { class: 'figs-line' });
  // What is shown: the shipped model file (its name) or 'training' (the model in the Train panel).
  const PRETRAINED = 'vqvae';
  const sourceSelect = h('select', { 'aria-label': 'VQ-VAE shown' }, h('option', { value: PRETRAINED }, 'pretrained VQ-VAE'), h('option', { value: 'training' }, 'the VQ-VAE in training'));
  sourceSelect.disabled = true;
  sourceSelect.addEventListener('change', () => { source = sourceSelect.value; refreshAll(); });
  let source = PRETRAINED;

  root.append(
    h('div', { class: 'controls' }, h('label', {}, 'Show ', sourceSelect)),
    h('div', { class: 'row wrap' },
      h('div', {}, h('div', { class: 'label' }, 'codes of your digit'), gridEl),
      h('div', {}, h('div', { class: 'label' }, 'decoded'), recon),
      h('div', {}, h('div', { class: 'label' }, 'codebook: the mean input patch of each code'), book),
      h('div', { class: 'grow' }, h('div', { class: 'label' }, 'code usage'), figs, histBox)));

  let plot = null;
  let codes = null, K = 64;
  const cells = [];
  for (let i = 0; i < 49; i++) {
    const c = h('div', { class: 'cell' });
    cells.push(c);
    gridEl.append(c);
  }
  const tiles = [];
  // A code cell and its codebook tile are one code: pointing at either marks both (and every cell of
  // that code), so the grid reads as "this cell is that patch".
  function mark(k) {
    tiles.forEach((t, i) => t.classList.toggle('mark', i === k));
    cells.forEach((c) => c.classList.toggle('mark', k !== null && c.textContent === String(k)));
  }
  gridEl.addEventListener('pointerover', (e) => { const c = e.target.closest('.cell'); if (c && c.textContent !== '') mark(Number(c.textContent)); });
  book.addEventListener('pointerover', (e) => { const i = tiles.indexOf(e.target); if (i >= 0) mark(i); });
  gridEl.addEventListener('pointerleave', () => mark(null));
  book.addEventListener('pointerleave', () => mark(null));

  async function refreshCodes() {
    try {
      if (source !== 'training') await app.ensureModel(source);
      const r = await lab.call('vqCodes', { name: source, pixels: app.input.pixels });
      codes = r.codes;
      K = r.state.K;
      r.codes.forEach((k, i) => {
        if (cells[i].textContent === String(k)) return;  // touch only the cells that changed
        cells[i].style.background = codeColour(k);
        cells[i].textContent = k;
        cells[i].title = `code ${k}: point here to find its patch in the codebook`;
      });
      drawImages(recon, clamp01(r.recon), 1);
      const used = new Set(r.codes);
      tiles.forEach((t, k) => { if (t.classList.contains('on') !== used.has(k)) t.classList.toggle('on'); });
      app.metrics.vqCodes = Array.from(r.codes);
      app.clearError('codes');
    } catch (e) { app.error(e, 'codes'); }
  }

  async function refreshBook(count = 1000) {
    try {
      const { patches, K: k, patch, counts } = await lab.call('vqCodePatches', { name: source, data: state.data, count });
      if (tiles.length !== k) {
        book.replaceChildren();
        tiles.length = 0;
        for (let i = 0; i < k; i++) {
          const c = h('canvas', { class: 'pix tile', width: patch, height: patch });
          c.style.borderColor = codeColour(i);
          tiles.push(c);
          book.append(c);
        }
      }
      for (let i = 0; i < k; i++) {
        drawPatch(tiles[i], patches.subarray(i * patch * patch, (i + 1) * patch * patch), patch);
        tiles[i].title = `code ${i}: ${counts[i]} cells`;
      }
      if (codes) { const used = new Set(codes); tiles.forEach((t, i) => t.classList.toggle('on', used.has(i))); }
      app.clearError('book');
    } catch (e) { app.error(e, 'book'); }
  }

  function drawPatch(canvas, values, side) {
    const img = new ImageData(side, side);
    for (let i = 0; i < side * side; i++) {
      const v = Math.round(255 * Math.max(0, Math.min(1, values[i])));
      img.data.set([v, v, v, 255], i * 4);
    }
    canvas.getContext('2d').putImageData(img, 0, 0);
  }

  function drawHist(counts, title) {
    const xs = counts.map((_, k) => k);
    const total = counts.reduce((a, b) => a + b, 0) || 1;
    const ys = counts.map((c) => (100 * c) / total);
    if (!plot) {
      const width = Math.max(280, Math.min(520, histBox.clientWidth || 420));
      plot = new window.uPlot({
        width, height: 200,
        scales: { x: { time: false, range: [-1, counts.length] }, y: { range: (u, lo, hi) => [0, Math.max(hi, 1)] } },
        axes: [{ label: 'code', stroke: '#555' }, { label: '% of cells', stroke: '#555' }],
        legend: { show: false },
        cursor: { show: true, points: { show: false } },
        series: [{}, { label: 'usage', stroke: '#4e79a7', fill: 'rgba(78,121,167,0.55)', paths: window.uPlot.paths.bars({ size: [0.8, 12] }), points: { show: false } }],
      }, [xs, ys], histBox);
    } else {
      plot.setData([xs, ys]);
    }
    histBox.title = title;
  }

  async function refreshUsage() {
    try {
      if (source !== 'training') {
        const u = await lab.call('vqUsage', { name: source, data: state.data, count: 2000 });
        figs.replaceChildren(h('b', {}, term('perplexity'), ` ${fmt(u.perplexity, 1)}`), ` · ${u.used} of ${u.counts.length} codes used · ${u.dead} `, term('deadcode', 'dead'), ` · over ${u.images} test ${itemsWord(state.data)}`);
        drawHist(u.counts, 'test digits');
        app.metrics.vqUsage = u;
      }
      app.clearError('usage');
    } catch (e) { app.error(e, 'usage'); }
  }

  // Training a VQ-VAE: usage over the last training batches, codes and codebook refreshed live.
  let lastLive = 0;
  lab.on('train', (ev) => {
    if (!ev.usage) return;
    sourceSelect.disabled = false;
    if (source !== 'training') return;
    const u = ev.usage;
    app.metrics.vqLiveUsage = u;
    figs.replaceChildren(h('b', {}, term('perplexity'), ` ${fmt(u.perplexity, 1)}`), ` · ${u.used} of ${u.counts.length} codes used in the last ${u.steps} batches · ${u.counts.length - u.used} `, term('deadcode', 'dead'));
    drawHist(u.counts, 'training batches');
    const now = performance.now();
    if (now - lastLive > 1500) { lastLive = now; refreshCodes(); refreshBook(300); }
  });
  // info: the model in training (the core's info(), with its capabilities), or null when none is.
  app.onTrainingModel = (info) => {
    if (info?.capabilities?.codeGrids) { sourceSelect.disabled = false; sourceSelect.value = source = 'training'; refreshAll(); }
    else if (source === 'training') { sourceSelect.value = source = PRETRAINED; sourceSelect.disabled = true; refreshAll(); }
  };

  function refreshAll() {
    refreshCodes();
    refreshBook();
    refreshUsage();
  }
  let timer = 0;
  app.onInput(() => { clearTimeout(timer); timer = setTimeout(refreshCodes, 20); });
  app.onChange((keys) => { if (keys.includes('data')) refreshUsage(); });
  refreshAll();
  return { refreshAll };
}
