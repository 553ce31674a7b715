// The worker's training: one session at a time, a fresh model (or a loaded file) and the core's trainer
// over a data set's training images. The loop runs while `running`, in slices of about 40 ms that yield
// to messages in between (drawing stays live), posting 'train' events with the steps' loss terms and,
// for a VQ-VAE, the core's code usage over the last 50 training calls (CodeUsageWindow).
import { dataset } from './data.js';
import { loadModel, modelNamed, worker } from './models.js';
import { post, yieldToMessages } from './protocol.js';

const SLICE_MS = 40;       // training runs in slices this long, answering messages in between
const USAGE_WINDOW = 50;   // training calls whose code counts the live usage sums

async function trainLoop(session) {
  // A pause then a start between two slices must not leave two loops running: only the newest runs.
  const me = session.loop = (session.loop || 0) + 1;
  let postedRunning = false;
  while (session.running && worker.training === session && session.loop === me) {
    const t0 = performance.now();
    const steps = [];
    let result = null;
    let images = 0;
    try {
      // Steps in calls of n, n sized from the measured step time to fill the slice.
      while (performance.now() - t0 < SLICE_MS) {
        const left = SLICE_MS - (performance.now() - t0);
        let n = Math.max(1, Math.min(64, Math.floor(left / (session.msPerStep || 5))));
        if (session.stopAt) n = Math.min(n, session.stopAt - session.trainer.progress().stepsDone);
        const t1 = performance.now();
        result = session.trainer.step(n);
        const per = (performance.now() - t1) / n;
        session.msPerStep = session.msPerStep ? 0.7 * session.msPerStep + 0.3 * per : per;
        steps.push(...result.steps);
        if (result.codeUsage) mergeUsage(session, result.codeUsage);
        images += result.batch * n;
        if (session.stopAt && result.stepsDone >= session.stopAt) { session.running = false; break; }
      }
    } catch (e) {
      session.running = false;
      if (e.partial) steps.push(...e.partial.steps);
      post('train', { steps, progress: session.trainer.progress(), error: e.message, running: false });
      return;
    }
    const ms = performance.now() - t0;
    session.imagesPerSecond = images / (ms / 1000);
    postedRunning = session.running;
    post('train', {
      steps, progress: result ? strip(result) : session.trainer.progress(), running: session.running,
      imagesPerSecond: session.imagesPerSecond, usage: usageSummary(session),
    });
    await yieldToMessages();
  }
  // Paused between slices: the page's last event must say so, or its chart and buttons keep the state
  // of the slice before the pause. (A stop at stopAt was posted with running: false already.)
  if (worker.training === session && session.loop === me && postedRunning) {
    post('train', { steps: [], progress: session.trainer.progress(), running: false, usage: usageSummary(session) });
  }
}

function strip(result) {
  const { steps, codeUsage, ...rest } = result;
  return rest;
}

// One training call's code counts into the session's window (made at the first, with its K).
function mergeUsage(session, usage) {
  if (!session.usage) session.usage = new worker.lab.CodeUsageWindow(usage.counts.length, USAGE_WINDOW);
  session.usage.add(usage.counts);
}

// {counts, used, perplexity, steps (training calls in the window)}, or null before any.
function usageSummary(session) {
  if (!session.usage) return null;
  const u = session.usage.summary();
  return { counts: Array.from(u.counts), used: u.used, perplexity: u.perplexity, steps: u.batches };
}

function dispose(session) {
  session.running = false;
  if (session.usage) session.usage.dispose();
  session.trainer.dispose();
  session.model.dispose();
}

export const trainingOps = {
  // The core's message for a bad value of a setting (null when the value is good).
  settingError({ kind, name, value }) { return worker.lab.settingError(kind, name, value); },

  // A fresh model of `config` ({kind, latent, ...hyperparameters}) or a model file's bytes, trained on
  // the data set's training images with settings {batch, lr, seed}. A kind over code grids (the kinds'
  // data "codes", a PixelCNN prior) trains on the code grids of the first `codeLimit` training images
  // under the VQ-VAE `codeModel` (a pretrained model's name), encoded by the core; its grid size and
  // codebook (the kind's fromData hyperparameters K, H, W) come from that model.
  async trainCreate({ config, bytes, settings, data = 'mnist', codeModel = 'vqvae', codeLimit = 4096 }) {
    // The new model and trainer are made first: a bad file or setting throws here and the session that
    // was running stays as it was.
    const { lab } = worker;
    const set = await dataset(data, 'train');
    const codes = bytes ? null : lab.kinds().find((k) => k.name === config.kind)?.data === 'codes';
    let vq = null;
    if (codes) {
      await loadModel(codeModel);
      vq = modelNamed(codeModel);
      const grid = vq.info().capabilities.codeGrids?.[0];
      if (!grid) throw new Error(`model '${codeModel}' has no code grids for a prior to model`);
      config = { ...config, K: grid.K, H: grid.H, W: grid.W };
    }
    const model = bytes ? new lab.Model(bytes) : new lab.Model(config, settings.seed ?? 1);
    if (bytes && model.info().capabilities.categoricalInput) {  // a loaded prior file: its code model's codes
      await loadModel(codeModel);
      vq = modelNamed(codeModel);
    }
    let trainer;
    try {
      // Raw pixel bytes (the IDX headers were checked here): the core keeps them as bytes, in one copy.
      const source = { images: set.images, labels: set.labels, format: 'raw' };
      trainer = new lab.Trainer(model, vq ? { ...source, codeModel: vq, limit: codeLimit } : source, settings);
    } catch (e) {
      model.dispose();
      throw e;
    }
    trainingOps.trainReset();
    worker.training = { model, trainer, running: false, usage: null, data, stopAt: 0 };
    return { info: model.info(), progress: trainer.progress() };
  },
  trainRun({ steps = 0 } = {}) {
    const t = worker.training;
    if (!t) throw new Error('no model is being trained');
    if (t.running) return true;
    t.running = true;
    t.stopAt = steps ? t.trainer.progress().stepsDone + steps : 0;
    trainLoop(t);
    return true;
  },
  trainPause() {
    if (worker.training) worker.training.running = false;
    return true;
  },
  trainStep() {
    const t = worker.training;
    if (!t) throw new Error('no model is being trained');
    if (t.running) throw new Error('pause training first');
    const result = t.trainer.step(1);
    if (result.codeUsage) mergeUsage(t, result.codeUsage);
    post('train', { steps: result.steps, progress: strip(result), running: false, usage: usageSummary(t) });
    return true;
  },
  trainReset() {
    if (worker.training) {
      dispose(worker.training);
      worker.training = null;
    }
    return true;
  },
  trainSave({ dtype = 'f32' }) {
    if (!worker.training) throw new Error('no model is being trained');
    return worker.training.model.save(dtype);
  },
};
