// The page as teachers and students meet it (issue 15), in real headless Chromium (Debian's, driven by
// playwright-core): <latent-lab> embedded by a course page on another origin works, and says so in
// place when LatentLab cannot be reached; errors show in the panel that failed and clear when the action
// next succeeds (offline, Train says why it cannot start); at phone (390x844, 360x740) and desktop
// (1366x768) sizes no element spills out of its panel, every control (every Train setting of every kind)
// can be reached, and links to a panel scroll its heading below the header; test images are numbered
// with their real label, Fashion-MNIST's class names show when that data set is chosen, every glossary
// term has its definition, and no menu lists the same name twice. Screenshots in <build>/screenshots/.
// Run by CTest in the wasm-release preset: node tests/browser/teach.test.mjs [wasm build dir]
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { createServer } from '../../scripts/serve.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const buildDir = path.resolve(process.argv[2] ?? path.join(root, 'build/wasm-release'));
const site = path.join(buildDir, 'web');
const shots = path.join(buildDir, 'screenshots');
fs.mkdirSync(shots, { recursive: true });

const built = spawnSync(process.execPath, [path.join(root, 'scripts/build_web.mjs'), '--out', site, '--wasm', buildDir], { encoding: 'utf8' });
assert.equal(built.status, 0, `build_web failed:\n${built.stdout}${built.stderr}`);

// LatentLab's own server, and a course website on another origin (another port: another origin).
const server = createServer(site);
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}/`;
const coursePages = new Map();  // path -> html
const course = http.createServer((req, res) => {
  const html = coursePages.get(req.url);
  if (!html) { res.writeHead(404).end(); return; }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
});
await new Promise((r) => course.listen(0, '127.0.0.1', r));
// 'localhost' for the course and 127.0.0.1 for LatentLab: other host and other port.
const courseBase = `http://localhost:${course.address().port}/`;

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found: scripts/setup.sh installs Debian's chromium`);
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'latentlab-chromium-'));
const browser = await chromium.launchPersistentContext(userDir, {
  executablePath: CHROMIUM, headless: true, acceptDownloads: true, viewport: { width: 1366, height: 768 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const problems = [];  // console errors and uncaught exceptions, except those a test provokes on purpose
async function openPage(query = '', viewport = { width: 1366, height: 768 }) {
  const page = await browser.newPage();
  await page.setViewportSize(viewport);
  page.on('console', (m) => { if (m.type() === 'error' && !page.expectErrors) problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(base + query);
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 120000 });
  assert.equal(await page.evaluate(() => document.body.dataset.ready), '1', 'the page failed to start');
  return page;
}
const waitMetric = (page, expr, timeout = 120000) => page.waitForFunction(expr, null, { timeout, polling: 100 });
// Every panel has drawn: the figures of the first view are in.
const firstViewDrawn = (page) => waitMetric(page, () => window.latentlab.metrics.drawSettled && window.latentlab.metrics.scatterPoints > 0 &&
  window.latentlab.metrics.vqUsage && window.latentlab.metrics.priorSamples > 0 && window.latentlab.metrics.vaeSamples > 0);

test.after(async () => {
  await browser.close();
  server.close();
  course.close();
  fs.rmSync(userDir, { recursive: true, force: true });
});

// ---- 1. embedding across origins ----

test('LatentLab\'s server lets other origins load the component (Access-Control-Allow-Origin)', async () => {
  // node's http (CTest runs node with --no-experimental-fetch: no fetch()).
  const r = await new Promise((resolve, reject) => http.get(`${base}embed.js`, { headers: { origin: courseBase.slice(0, -1) } }, (res) => { res.resume(); resolve(res); }).on('error', reject));
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['access-control-allow-origin'], '*');
  assert.match(r.headers['content-type'], /^text\/javascript/);
});

test('a course page on another origin embeds <latent-lab>: the element is defined, sizes itself, and draws', async () => {
  coursePages.set('/lecture.html', `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Lecture 7</title>
<script type="module" src="${base}embed.js"></script></head><body><h1>Lecture 7: Autoencoders</h1>
<latent-lab panels="draw" models="ae_2d,vae_2d" digit="3"><a href="${base}">LatentLab</a></latent-lab></body></html>`);
  const page = await browser.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`${courseBase}lecture.html`);
  assert.notEqual(new URL(page.url()).origin, new URL(base).origin);
  await page.waitForFunction(() => customElements.get('latent-lab'), null, { timeout: 30000 });
  await page.waitForFunction(() => parseInt(document.querySelector('latent-lab iframe')?.style.height, 10) > 400, null, { timeout: 120000 });
  const frame = await (await page.$('latent-lab iframe')).contentFrame();
  assert.equal(new URL(frame.url()).origin, new URL(base).origin);
  await frame.waitForFunction(() => window.latentlab?.metrics.drawSettled && document.querySelectorAll('.recon-row[data-sum]').length === 2, null, { timeout: 120000 });
  // The attributes reached the page's state, and the panel works: test image #3 is reconstructed.
  assert.deepEqual(await frame.evaluate(() => [window.latentlab.state.panels, window.latentlab.state.models, window.latentlab.state.digit]), [['draw'], ['ae_2d', 'vae_2d'], 3]);
  const sums = await frame.$$eval('.recon-row', (rows) => rows.map((r) => Number(r.dataset.sum)));
  assert.ok(sums.every((s) => s > 5), `blank reconstructions: ${sums}`);
  assert.equal(await page.$$eval('latent-lab .latentlab-error', (e) => e.length), 0);
  assert.equal(await page.isVisible('latent-lab > a'), false, 'the fallback link is replaced by the frame');
  await page.screenshot({ path: path.join(shots, 'embed-cross-origin.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('when LatentLab cannot be reached or does not start, the element says so in place', async () => {
  coursePages.set('/down.html', `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Lecture 8</title>
<script type="module" src="${base}embed.js"></script></head><body>
<latent-lab id="down" panels="sample"><a href="${base}">Open LatentLab</a></latent-lab>
<latent-lab id="gone" panels="vq"></latent-lab></body></html>`);
  const page = await browser.newPage();
  // The component's own file loads; then the server is unreachable for the first element's page and
  // answers 'not found' for the second's.
  await page.route(/\/index\.html\?(.*&)?panels=sample/, (r) => r.abort('connectionrefused'));
  await page.route(/\/index\.html\?(.*&)?panels=vq/, (r) => r.fulfill({ status: 404, contentType: 'text/plain', body: 'not found' }));
  // The host page hears of it too: the element's 'latentlab-error' event.
  await page.addInitScript(() => {
    window.seen = {};
    document.addEventListener('latentlab-error', (e) => { window.seen[e.target.id] = e.detail.message; }, true);
  });
  await page.goto(`${courseBase}down.html`);
  await page.waitForSelector('#down .latentlab-error', { timeout: 30000 });
  assert.match(await page.textContent('#down .latentlab-error'), /LatentLab cannot be reached at http:\/\/127\.0\.0\.1:\d+/);
  assert.ok(await page.isVisible('#down > a'), 'the host\'s fallback link shows with the message');
  assert.ok(await page.isVisible('#down .latentlab-error a[target=_blank]'), 'the message links to the page');
  // The page that never says it runs: a message after the element's wait (15 s).
  await page.waitForSelector('#gone .latentlab-error', { timeout: 40000 });
  assert.match(await page.textContent('#gone .latentlab-error'), /LatentLab did not start from http:\/\/127\.0\.0\.1:\d+\/index\.html/);
  assert.deepEqual(await page.evaluate(() => Object.keys(window.seen).sort()), ['down', 'gone']);
  await page.screenshot({ path: path.join(shots, 'embed-unreachable.png'), fullPage: true });
  await page.close();
});

test('docs/embedding.md lists every attribute of the component: each state key of the running page', async () => {
  const page = await openPage('?panels=train');
  const keys = await page.evaluate(() => Object.keys(window.latentlab.schema));
  await page.close();
  const doc = fs.readFileSync(path.join(root, 'docs/embedding.md'), 'utf8');
  const missing = keys.filter((k) => !doc.includes(`| \`${k}\` |`));
  assert.deepEqual(missing, [], 'state keys with no row in docs/embedding.md');
  assert.ok(keys.length >= 40, `${keys.length} keys`);
});

// ---- 2. errors where the user is ----

test('offline, Train says in its panel why it cannot start; the message clears when training starts', async () => {
  const page = await openPage('?panels=draw,train');
  await waitMetric(page, () => window.latentlab.metrics.drawSettled);
  page.expectErrors = true;  // the aborted downloads log console errors
  await page.route('**/data/mnist/train-*', (r) => r.abort('internetdisconnected'));
  await page.click('[data-testid=train-start]');
  const box = '#train [data-testid=errors-train] .error';
  await page.waitForSelector(box, { state: 'visible', timeout: 30000 });
  assert.match(await page.textContent(box), /MNIST training set.*: cannot download data\/mnist\/train-.*(offline|cannot be reached)/);
  // Where the user looks: in the viewport, by Start; nothing in the page-wide box at the top.
  const [start, msg] = await Promise.all([page.$('[data-testid=train-start]'), page.$(box)].map(async (e) => (await e).boundingBox()));
  assert.ok(msg.y >= 0 && msg.y + msg.height <= 768, `the message is off-screen at y = ${msg.y}`);
  assert.ok(Math.abs(msg.y - start.y) < 200, `the message is far from Start (${msg.y} vs ${start.y})`);
  assert.equal(await page.$eval('#errors', (e) => e.textContent.trim()), '');
  // The download line at the top does not stay on "Loading".
  await page.waitForFunction(() => document.getElementById('status').textContent === '', null, { timeout: 10000 });
  assert.equal(await page.isDisabled('[data-testid=train-start]'), false);
  // Back online: Start works and the message goes.
  await page.unroute('**/data/mnist/train-*');
  page.expectErrors = false;
  await page.click('[data-testid=train-start]');
  await waitMetric(page, () => window.latentlab.metrics.trainSteps > 0, 300000);
  await page.waitForSelector(box, { state: 'detached', timeout: 10000 });
  await page.click('[data-testid=train-pause]');
  await page.close();
});

test('a failing panel shows its message in that panel, and only that action\'s success clears it', async () => {
  const page = await openPage('?panels=draw,sample');
  await waitMetric(page, () => window.latentlab.metrics.drawSettled && window.latentlab.metrics.vaeSamples > 0);
  page.expectErrors = true;
  // A model that cannot be downloaded, added in Draw.
  await page.route('**/models/vae_mlp.safetensors', (r) => r.abort('connectionrefused'));
  await page.selectOption('select[aria-label="add a model"]', 'vae_mlp');
  const drawBox = '#draw [data-testid=errors-draw] .error';
  await page.waitForSelector(drawBox, { state: 'visible', timeout: 30000 });
  assert.match(await page.textContent(drawBox), /model vae_mlp: cannot download models\/vae_mlp\.safetensors/);
  assert.equal(await page.$$eval('#sample .panel-errors .error', (e) => e.length), 0, 'the message is in Draw only');
  assert.equal(await page.$eval('#errors', (e) => e.textContent.trim()), '');
  // Drawing still works, and a reconstruction succeeding is not the failed action: the message stays.
  await page.click('[data-testid=random-digit]');
  await waitMetric(page, () => window.latentlab.metrics.drawSettled, 30000);
  assert.ok(await page.isVisible(drawBox));
  // The model reachable again and added again: the message goes.
  await page.unroute('**/models/vae_mlp.safetensors');
  page.expectErrors = false;
  await page.evaluate(() => window.latentlab.set({ models: ['ae_2d', 'vae_2d'] }));
  await page.evaluate(() => window.latentlab.set({ models: ['ae_2d', 'vae_2d', 'vae_mlp'] }));
  await page.waitForSelector(drawBox, { state: 'detached', timeout: 30000 });
  await page.waitForSelector('.recon-row[data-model=vae_mlp][data-sum]', { timeout: 30000 });
  await page.close();
});

// ---- 3. phones and desktops: nothing cut off, every control reachable ----

// In the page: every visible element of every shown panel inside its panel (where an ancestor inside the
// panel clips it, the part it shows), the page not scrolling sideways, and every control reachable: in
// view after scrolling to it, and the element at its centre is the control itself (not covered by the
// header or clipped away by its panel).
function layoutProblems(scope) {
  const out = [];
  const name = (el) => `${el.tagName.toLowerCase()}${el.getAttribute('aria-label') ? `[${el.getAttribute('aria-label')}]` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.split(' ').join('.')}` : ''}` +
    `${el.textContent && el.children.length === 0 ? ` "${el.textContent.trim().slice(0, 30)}"` : ''}`;
  const shown = (el) => el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true });
  if (document.documentElement.scrollWidth > innerWidth) out.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${innerWidth}`);
  for (const panel of document.querySelectorAll(scope)) {
    if (!shown(panel)) continue;
    const P = panel.getBoundingClientRect();
    for (const el of panel.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0 || !shown(el)) continue;
      let left = r.left, right = r.right;
      for (let a = el.parentElement; a && a !== panel; a = a.parentElement) {
        if (getComputedStyle(a).overflowX !== 'visible') { const ar = a.getBoundingClientRect(); left = Math.max(left, ar.left); right = Math.min(right, ar.right); }
      }
      if (right <= left) continue;
      if (left < P.left - 0.5 || right > P.right + 0.5) out.push(`${panel.id}: ${name(el)} spans x ${left.toFixed(0)}..${right.toFixed(0)}, its panel ${P.left.toFixed(0)}..${P.right.toFixed(0)}`);
    }
    for (const el of panel.querySelectorAll('input, select, button, textarea, a[href], canvas.pad')) {
      if (!shown(el)) continue;
      el.scrollIntoView({ block: 'center', inline: 'nearest', behavior: 'instant' });
      const r = el.getClientRects()[0];
      if (!r || r.width === 0) { out.push(`${panel.id}: ${name(el)} has no size`); continue; }
      const x = r.left + r.width / 2, y = r.top + r.height / 2;
      if (x < 0 || x > innerWidth || y < 0 || y > innerHeight) { out.push(`${panel.id}: ${name(el)} is off-screen at (${x.toFixed(0)}, ${y.toFixed(0)})`); continue; }
      const hit = document.elementFromPoint(x, y);
      if (!hit || !(hit === el || el.contains(hit))) out.push(`${panel.id}: ${name(el)} is covered by ${hit ? name(hit) : 'nothing'} at (${x.toFixed(0)}, ${y.toFixed(0)})`);
    }
  }
  return out;
}

for (const [width, height] of [[390, 844], [360, 740], [1366, 768]]) {
  test(`at ${width}x${height} no element leaves its panel and every control, every Train setting of every kind, can be reached`, async () => {
    const page = await openPage('', { width, height });
    await firstViewDrawn(page);
    // A few training steps, so the charts and reconstructions of Train are there too.
    await page.click('[data-testid=train-step]');
    await waitMetric(page, () => window.latentlab.metrics.trainSteps > 0, 300000);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=loss-chart] canvas').length > 0, null, { timeout: 30000 });
    const found = await page.evaluate(layoutProblems, 'section.panel, section.glossary');
    assert.deepEqual(found, [], `${width}x${height}`);
    // Every kind's form.
    const kinds = await page.$$eval('[data-testid=kind] option', (o) => o.map((x) => x.value));
    for (const kind of kinds) {
      await page.selectOption('[data-testid=kind]', kind);
      const inTrain = await page.evaluate(layoutProblems, '#train');
      assert.deepEqual(inTrain, [], `${width}x${height}, Train with ${kind}`);
    }
    // The header keeps to a line or two, and a link to a panel shows its heading below it.
    const header = await page.$eval('header', (e) => e.getBoundingClientRect().height);
    assert.ok(header <= (width < 600 ? 60 : 80), `the header is ${header} px tall`);
    for (const id of ['train', 'vq', 'glossary']) {
      await page.evaluate((i) => { document.querySelector(`a[href="#${i}"]`).click(); }, id);
      await page.waitForTimeout(100);
      const [top, below] = await page.$eval(`#${id} h2`, (h2) => [h2.getBoundingClientRect().top, document.querySelector('header').getBoundingClientRect().bottom]);
      assert.ok(top >= below - 1, `${width}x${height}: the ${id} heading is at ${top}, under the header (its bottom at ${below})`);
    }
    // Latent space reached by its link: the decoded point is on screen beside the scatter, not below
    // the fold.
    if (width >= 1024) {
      await page.evaluate(() => { document.querySelector('a[href="#latent"]').click(); });
      await page.waitForTimeout(100);
      const preview = await page.$eval('#panel-latent .preview canvas', (c) => { const r = c.getBoundingClientRect(); return [r.top, r.bottom]; });
      assert.ok(preview[0] >= 0 && preview[1] <= height, `${width}x${height}: the decoded point spans y ${preview} of a ${height} px window`);
    }
    // Screenshots: the page, and each panel.
    const tag = width < 600 ? `phone${width}` : `desktop${width}`;
    await page.selectOption('[data-testid=kind]', 'vae');
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(shots, `${tag}-page.png`), fullPage: true });
    for (const id of ['draw', 'latent', 'interpolate', 'sample', 'vq', 'train']) {
      await page.evaluate((i) => document.getElementById(i).scrollIntoView(), id);
      await page.screenshot({ path: path.join(shots, `${tag}-${id}.png`) });
    }
    await page.close();
    assert.deepEqual(problems, []);
  });
}

// ---- 4. Train does not mislead ----

test('Train trains what its form says, names F32 and F16 files apart, shows its model in Draw, and its legend\'s values', async () => {
  const page = await openPage('?panels=draw,train');
  const step = async () => {
    await page.evaluate(() => { window.latentlab.metrics.trainSteps = -1; });
    await page.click('[data-testid=train-step]');
    await waitMetric(page, () => window.latentlab.metrics.trainSteps > 0, 300000);
  };
  await step();
  // The legend shows the newest step's values without hovering ('--' before).
  await page.waitForFunction(() => {
    const v = [...document.querySelectorAll('[data-testid=loss-chart] .u-legend .u-value')].map((e) => e.textContent);
    return v.length === 4 && v.every((t) => /\d/.test(t));
  }, null, { timeout: 10000 });
  const fileName = async (selector) => {
    const [d] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
    return d.suggestedFilename();
  };
  assert.equal(await fileName('[data-testid=download]'), 'latentlab_vae_1steps_f32.safetensors');
  assert.equal(await fileName('#panel-train button:text-is("F16")'), 'latentlab_vae_1steps_f16.safetensors');
  // Another kind chosen while paused: the next step trains a new model of that kind, not the old one.
  await page.selectOption('[data-testid=kind]', 'ae');
  assert.match(await page.textContent('[data-testid=train-summary]'), /Start trains a new model/);
  await step();
  assert.equal(await fileName('[data-testid=download]'), 'latentlab_ae_1steps_f32.safetensors');
  // A bad file: the message, and the status line back to what it said (not 'loading the training set').
  const status = '[data-testid=epoch-progress] ~ span';
  const before = await page.textContent(status);
  const bad = path.join(shots, 'not-a-model.safetensors');
  fs.writeFileSync(bad, 'not a model file');
  await page.setInputFiles('[data-testid=load-file]', bad);
  await page.waitForSelector('[data-testid=errors-train] .error', { state: 'visible', timeout: 30000 });
  assert.equal(await page.textContent(status), before);
  // The model in training, one click from the Draw panel.
  await page.click('[data-testid=train-to-draw]');
  await page.waitForSelector('.recon-row[data-model=training][data-sum]', { timeout: 30000 });
  assert.ok(Number(await page.getAttribute('.recon-row[data-model=training]', 'data-sum')) > 0);
  await page.close();
  assert.deepEqual(problems, []);
});

// ---- 5. words for students ----

test('test images are numbered, with their real label; menus name each model once; every term has its definition', async () => {
  const page = await openPage('?panels=draw,interpolate,sample,vq,train');
  await waitMetric(page, () => window.latentlab.metrics.drawSettled);
  // Test image #0 of MNIST is a 7; #71 and #73 (Interpolate's default ends) a 0 and a 9.
  assert.equal(await page.textContent('[data-testid=draw-status]'), 'Test image #0: digit 7.');
  assert.equal(await page.getAttribute('#panel-draw input[type=number]', 'aria-label'), 'test image number');
  await page.waitForFunction(() => document.querySelector('[data-testid=interp-from-label]').textContent !== '', null, { timeout: 30000 });
  assert.deepEqual(await page.$$eval('[data-testid^=interp-][data-testid$=-label]', (e) => e.map((x) => x.textContent)), ['digit 0', 'digit 9']);
  assert.match(await page.textContent('#panel-interpolate .controls'), /From test image #/);
  // No menu lists one name twice.
  const menus = await page.$$eval('select', (ss) => ss.map((s) => [s.getAttribute('aria-label'), [...s.options].map((o) => o.textContent)]));
  for (const [label, options] of menus) assert.equal(new Set(options).size, options.length, `the menu '${label}' repeats a name: ${options}`);
  // The glossary: each term the issue names, and every term link in the page, has a definition.
  const glossary = await page.$$eval('#glossary dt', (dts) => dts.map((dt) => [dt.id, dt.textContent, dt.nextElementSibling.textContent]));
  for (const word of ['BCE', 'MSE', 'KL', 'nats', 'perplexity', 'commitment', 'EMA']) {
    assert.ok(glossary.some(([, t, d]) => t.includes(word) && d.length > 40), `no glossary entry for ${word}`);
  }
  const links = await page.$$eval('a.term', (as) => as.map((a) => [a.textContent, a.getAttribute('href'), a.title]));
  assert.ok(links.length >= 15, `${links.length} term links`);
  const ids = new Set(glossary.map(([id]) => `#${id}`));
  for (const [text, href, title] of links) {
    assert.ok(ids.has(href), `the term '${text}' links to ${href}, not in the glossary`);
    assert.ok(title.length > 40, `the term '${text}' has no tooltip`);
  }
  for (const word of ['BCE', 'MSE', 'perplexity']) assert.ok(links.some(([t]) => t === word), `'${word}' is not explained where it shows`);
  // A code cell points at its codebook tile: hovering cell 0 marks the tile of its code, and only it.
  await waitMetric(page, () => window.latentlab.metrics.vqCodes?.length === 49 && document.querySelectorAll('[data-testid=codebook] canvas').length === 64);
  const code = Number(await page.textContent('[data-testid=codegrid] .cell'));
  await page.hover('[data-testid=codegrid] .cell');
  assert.deepEqual(await page.$$eval('[data-testid=codebook] canvas', (t) => t.map((c, i) => (c.classList.contains('mark') ? i : -1)).filter((i) => i >= 0)), [code]);
  await page.close();
  assert.deepEqual(problems, []);
});

const hasFashion = fs.existsSync(path.join(site, 'data/fashion/t10k-labels-idx1-ubyte.gz'));
test('with Fashion-MNIST chosen, the labels are its classes, not digits', { skip: !hasFashion && 'no Fashion-MNIST in this build (Debian\'s dataset-fashion-mnist)' }, async () => {
  const page = await openPage('?panels=draw,latent,interpolate,train');
  await waitMetric(page, () => window.latentlab.metrics.drawSettled && window.latentlab.metrics.scatterPoints > 0);
  await page.selectOption('#panel-train select[aria-label="data set"]', 'fashion');
  // Fashion-MNIST's test image #0 is an ankle boot (label 9); #71 a T-shirt/top (0), #73 a shirt (6).
  await page.waitForFunction(() => document.querySelector('[data-testid=draw-status]').textContent === 'Test image #0: Ankle boot.', null, { timeout: 60000 });
  await page.waitForFunction(() => document.querySelector('[data-testid=interp-from-label]').textContent === 'T-shirt/top' &&
    document.querySelector('[data-testid=interp-to-label]').textContent === 'Shirt', null, { timeout: 60000 });
  await page.waitForFunction(() => [...document.querySelectorAll('#panel-latent .u-legend .u-label')].map((e) => e.textContent).join(',') ===
    'T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot', null, { timeout: 60000 });
  assert.match(await page.textContent('#panel-latent'), /10,000 test images/);
  assert.ok(await page.isVisible('#draw .fashion-only'), 'the note that the models learned from digits');
  await (await page.$('#latent')).screenshot({ path: path.join(shots, 'fashion-latent.png') });
  await page.close();
  assert.deepEqual(problems, []);
});
