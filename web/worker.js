// The page's Web Worker: the only JavaScript that loads the WebAssembly module, so everything that
// computes runs here and the page's thread only draws. It answers requests from client.js and pushes
// events (worker/protocol.js). Its ops come by concern:
//   worker/models.js    the module, the models by name, reconstruct (with the core's per-image loss
//                       terms), encode, decode, sample
//   worker/data.js      (helpers) gzipped IDX data sets fetched with progress, test images
//   worker/training.js  the training session and its loop in slices
//   worker/analysis.js  latent scatter and manifold, VQ codes, code usage, code patches, random codes,
//                       prior sampling
// The benchmark of bench.html has its own worker (bench_worker.js) over the same modules.
// Long jobs (training, animated sampling) run in slices of a few tens of milliseconds and yield between
// slices, so a reconstruction request from the drawing canvas is answered between two slices.
import { analysisOps } from './worker/analysis.js';
import { modelOps } from './worker/models.js';
import { serve } from './worker/protocol.js';
import { trainingOps } from './worker/training.js';

serve({ ...modelOps, ...trainingOps, ...analysisOps });
