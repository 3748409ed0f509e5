// Step 4 of the demo: few-shot training in the page. Labelled images (a
// folder per class, picked or dropped, or images plus a typed class) go into
// a TrainingSet, which decodes each one and refuses by name what training
// cannot use; Train prepares them with the CLI's pipeline (automatic masks
// and frozen MobileSAM features or CLIP's input pixels, once per image, kept
// by content hash in memory and in IndexedDB across reloads) and trains a
// sam-encoder head, or a CLIP head on the CLIP weights and BPE vocabulary
// picked here, with the CLI's classifier and loop
// (src/medfocus/web-trainer.ts → train-loop.ts), showing progress, ETA and
// the loss per epoch. Stop ends training at the next epoch
// boundary (pressed while the images are prepared: after the first epoch);
// Resume continues it (to the epochs field, which may grow). The trained
// head is loaded into step 3 to classify, and Export downloads head.json +
// head.safetensors, the files `medfocus train` writes (step 3 imports them;
// a CLIP head together with its CLIP weights, which head.json names
// clip.safetensors as the CLI's run folder does).
// window.demo.training exposes the state for test/web-train-page.test.ts.

import * as lib from '/dist/medfocus.browser.js';
import { act, demo, installHead, log, mib, setStatus } from './demo.js';

const $ = (id) => document.getElementById(id);

const training = {
  set: new lib.TrainingSet(),
  /** The current WebTrainingRun (prepared images, classifier, AdamW state). */
  run: undefined,
  /** MobileSAM as the pipeline uses it, at the segmenter's input side (built on the first Train). */
  sam: undefined,
  /** Backbone clip: the picked weights file, the ClipModel built from it and the tokenizer from the picked vocabulary. */
  clipFile: undefined,
  clipModel: undefined,
  tokenizer: undefined,
  /** Masks and features by content hash, in memory and IndexedDB: a second Train, or a reload, reuses them. */
  cache: await lib.IndexedDbCache.open(),
  running: false,
  stopRequested: false,
  /** The trained head's files ({ json, tensors }), once training has run. */
  head: undefined,
  /** The memory report of the current run ({ plannedBytes, poolBytes, hostBytes }). */
  memory: undefined,
};
demo.training = training;

// ---------------------------------------------------------------- images

/** Adds files ({ className, name, file }); every refusal is listed by name. */
async function addFiles(entries) {
  await act('add images', 'train-status', async () => {
    let added = 0;
    for (const { className, name, file } of entries) {
      if (await training.set.add(className, name, await lib.bytesFromFile(file))) added++;
    }
    log(`training set: ${added} of ${entries.length} files added`);
    showSet();
  });
}

function showSet() {
  const body = $('train-counts').tBodies[0];
  body.textContent = '';
  for (const { className, count } of training.set.counts()) {
    const row = body.insertRow();
    row.insertCell().textContent = className;
    row.insertCell().textContent = String(count);
  }
  const refused = training.set.refused;
  $('train-refused').textContent = refused.length === 0 ? '' : `Refused (not trained on):\n${refused.map((r) => `  ${r.name}${r.className ? ` (${r.className})` : ''}: ${r.reason}`).join('\n')}`;
  const problems = training.set.problems();
  setStatus('train-status', problems.length > 0 ? `cannot train yet: ${problems.join('; ')}` : `${training.set.ordered().length} images in ${training.set.classes.length} classes; press Train`, problems.length > 0 && refused.length > 0);
}

/** The class of a file picked through a folder: the name of the folder holding it. */
function folderClass(relativePath) {
  const parts = relativePath.split('/');
  return parts.length >= 2 ? parts[parts.length - 2] : '';
}

/** Every file under dropped entries (directories walked), with its path. */
async function walkEntries(entries) {
  const out = [];
  const readAll = (reader) =>
    new Promise((resolve, reject) => {
      const all = [];
      const next = () => reader.readEntries((batch) => (batch.length === 0 ? resolve(all) : (all.push(...batch), next())), reject);
      next();
    });
  async function visit(entry, path) {
    if (entry.isFile) out.push({ path: `${path}${entry.name}`, file: await new Promise((resolve, reject) => entry.file(resolve, reject)) });
    else if (entry.isDirectory) for (const child of await readAll(entry.createReader())) await visit(child, `${path}${entry.name}/`);
  }
  for (const entry of entries) await visit(entry, '');
  return out;
}

// ---------------------------------------------------------------- training

/** The training defaults of the chosen backbone (medfocus train's: one table per backbone). */
function backboneDefaults() {
  return $('train-backbone').value === 'clip' ? lib.CLIP_TRAIN_DEFAULTS : lib.SAM_ENCODER_TRAIN_DEFAULTS;
}

function settings() {
  return {
    ...backboneDefaults(),
    focus: $('train-focus').value,
    epochs: Number($('train-epochs').value),
    seed: Number($('train-seed').value),
    batch: Number($('train-batch').value),
    pointsPerSide: Number($('train-points').value),
    samSize: demo.samSize,
  };
}

/** Why Train cannot start with these settings (undefined when it can): the models they need. */
function missingModels(s) {
  const missing = [];
  if (s.backbone === 'clip' && !training.clipModel) missing.push('the CLIP weights');
  if (s.backbone === 'clip' && !training.tokenizer) missing.push('their BPE vocabulary (bpe_simple_vocab_16e6.txt.gz)');
  if (lib.headNeedsMobileSam(s.backbone, s.focus) && !demo.samBytes) missing.push('MobileSAM (step 1)');
  return missing.length > 0 ? `load ${missing.join(' and ')}` : undefined;
}

/** CLIP's weights: the model the classifier trains on, kept with its file (a trained head opens it as clip.safetensors). */
async function loadClipWeights(file) {
  // f32 as the CLI trains (a run must mean the same on every adapter).
  const model = await lib.ClipModel.fromSafetensors(demo.gpu, await lib.openSafetensors(lib.blobSource(file)), { dtype: 'f32' });
  training.clipModel?.dispose();
  training.clipModel = model;
  training.clipFile = file;
  const v = model.config.vision;
  log(`CLIP weights ${file.name}: ${v.imageResolution}px, patch ${v.patchSize}, width ${v.width}, ${v.layers} blocks`);
}

async function loadClipVocab(file) {
  training.tokenizer = await lib.ClipTokenizer.fromMergesGz(await lib.bytesFromFile(file));
  log(`CLIP vocabulary ${file.name}: ${training.tokenizer.vocabSize} tokens`);
}

/** MobileSAM for the pipeline, from the bytes step 1 loaded, at the segmenter's input side. */
function pipelineSam() {
  if (!demo.samBytes) throw new Error('load MobileSAM first (step 1)');
  if (training.sam?.samSize !== demo.samSize) {
    training.sam?.dispose();
    training.sam = lib.mobileSamSegmenter(demo.gpu, demo.samBytes.encoder, demo.samBytes.decoder, demo.samSize, 'f32');
  }
  return training.sam;
}

async function train() {
  await trainingAction(async () => {
    const s = settings();
    const bar = $('train-progress');
    bar.hidden = false;
    bar.value = 0;
    training.run?.dispose();
    training.run = undefined;
    training.head = undefined;
    const missing = missingModels(s);
    if (missing) throw new Error(missing);
    const t0 = performance.now();
    const run = await lib.WebTrainingRun.prepare(training.set, s, {
      gpu: demo.gpu,
      sam: lib.headNeedsMobileSam(s.backbone, s.focus) ? pipelineSam() : undefined,
      clip: s.backbone === 'clip' ? { model: training.clipModel, tokenizer: training.tokenizer } : undefined,
      cache: training.cache,
      onImage: (done, total, name) => {
        bar.value = done / total;
        setStatus('train-status', `masks and features: ${done}/${total} (${name})`);
      },
    });
    training.run = run;
    const { memoryHits, storedHits, misses } = training.cache.stats;
    const where = training.cache.persistent ? `${storedHits} read back from IndexedDB, ${memoryHits} from memory` : `${memoryHits} from memory (not kept across reloads: ${training.cache.storeError})`;
    log(`prepared ${run.images.length} images in ${((performance.now() - t0) / 1000).toFixed(1)} s (${s.backbone}, focus ${s.focus}, MobileSAM ${s.samSize}²); cache so far: ${where}, ${misses} misses (computed)`);
    showMemory();
    await runEpochs(run.epochs);
  });
}

async function resume() {
  await trainingAction(async () => {
    const epochs = Number($('train-epochs').value);
    await runEpochs(Math.max(epochs, training.run.progress.epoch));
  });
}

/** A training action: Stop is live throughout (pressed while the images are prepared, training ends after the first epoch). */
async function trainingAction(fn) {
  training.running = true;
  training.stopRequested = false;
  refreshTraining();
  try {
    await act('train', 'train-status', fn);
  } finally {
    training.running = false;
    refreshTraining();
  }
}

/** Trains the current run to `epochs` with progress, ETA and the loss curve, then loads the head into step 3. */
async function runEpochs(epochs) {
  const run = training.run;
  const bar = $('train-progress');
  const stepsPerEpoch = Math.ceil(run.images.length / run.settings.batch);
  const total = (epochs - run.progress.epoch) * stepsPerEpoch;
  let done = 0;
  const t0 = performance.now();
  await run.train({
    epochs,
    onStep: ({ epoch, loss }) => {
      done++;
      bar.value = done / total;
      const perStep = (performance.now() - t0) / done;
      setStatus('train-status', `epoch ${epoch + 1}/${epochs}, step ${done}/${total}, loss ${loss.toFixed(4)}, ETA ${formatSeconds(((total - done) * perStep) / 1000)}`);
    },
    onEpoch: () => drawLoss(run.progress.losses),
    shouldStop: () => training.stopRequested,
  });
  const p = run.progress;
  const stopped = p.epoch < epochs;
  setStatus('train-status', `${stopped ? 'stopped' : 'trained'}: ${p.epoch}/${epochs} epochs, ${p.step} steps, last epoch's loss ${p.losses.at(-1)?.toFixed(4)} (${formatSeconds((performance.now() - t0) / 1000)})${stopped ? '; Resume continues' : ''}`);
  log(`trained ${p.epoch} epochs in the page`);
  const { backbone, focus } = run.settings;
  const sam = lib.headNeedsMobileSam(backbone, focus) ? demo.samBytes : undefined;
  training.head = await run.headFiles(sam && (await lib.mobileSamFileIds({ name: 'encoder.onnx', bytes: sam.encoder }, { name: 'sam.onnx', bytes: sam.decoder })));
  installHead(await loadTrainedHead(training.head));
}

/** The trained head as step 3 loads an imported one (the same files, from memory; a CLIP head's weights from the picked file). */
function loadTrainedHead({ json, tensors }) {
  const spec = lib.parseWebHeadSpec(json);
  return lib.MedFocusHead.load(
    demo.gpu,
    spec,
    async (name) => (spec.backbone === 'clip' && name === spec.clip ? lib.openSafetensors(lib.blobSource(training.clipFile)) : lib.openSafetensors(lib.bytesSource(tensors, name), name)),
    { mobileSam: async (name) => (name === spec.mobileSam.encoder ? demo.samBytes.encoder : demo.samBytes.decoder) },
  );
}

/** What the run holds: GPU memory (the peak training plans, and the pool's now) and the features kept on the host. */
function showMemory() {
  const run = training.run;
  const pool = demo.gpu.pool.stats();
  const clip = run.settings.backbone === 'clip';
  $('train-memory').textContent =
    `GPU: training plans a peak of ${mib(run.plannedBytes)} on top of ${clip ? "CLIP's weights and " : ''}MobileSAM (parameters, AdamW moments, the training graph of a batch of ${Math.min(run.settings.batch, run.images.length)} ` +
    `with its activations and gradients, the next batch), whatever the number of images; the buffer pool holds ${mib(pool.ownedBytes)} now. ` +
    `Host: ${mib(run.hostBytes)} of ${clip ? 'input pixels' : 'features'} for ${run.images.length} images (uploaded a batch at a time).`;
  training.memory = { plannedBytes: run.plannedBytes, poolBytes: pool.ownedBytes, hostBytes: run.hostBytes };
}

function formatSeconds(s) {
  return s < 90 ? `${s.toFixed(0)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/** The mean loss per epoch, a line over the epochs, scaled to its own range. */
function drawLoss(losses) {
  const canvas = $('train-loss');
  canvas.hidden = false;
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = '#667085';
  ctx.font = '11px system-ui';
  const max = Math.max(...losses);
  const min = Math.min(0, ...losses);
  ctx.fillText(`loss per epoch (max ${max.toFixed(3)})`, 6, 12);
  const x = (i) => 6 + ((width - 12) * i) / Math.max(1, losses.length - 1);
  const y = (v) => height - 6 - ((height - 24) * (v - min)) / Math.max(1e-9, max - min);
  ctx.strokeStyle = '#1570ef';
  ctx.lineWidth = 2;
  ctx.beginPath();
  losses.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
  ctx.stroke();
}

function exportHead() {
  const { json, tensors } = training.head;
  for (const [name, data, type] of [
    ['head.json', json, 'application/json'],
    ['head.safetensors', tensors, 'application/octet-stream'],
  ]) {
    const url = URL.createObjectURL(new Blob([data], { type }));
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
  log('exported head.json and head.safetensors (load them in step 3, or use them with medfocus predict)');
}

function refreshTraining() {
  const busy = demo.busy;
  $('train-clip-files').hidden = $('train-backbone').value !== 'clip';
  $('train').disabled = busy || missingModels(settings()) !== undefined || training.set.problems().length > 0;
  $('train-stop').disabled = !training.running || training.stopRequested;
  $('train-resume').disabled = busy || !training.run;
  $('train-export').disabled = busy || !training.head;
  $('train-clear').disabled = busy;
}

// ---------------------------------------------------------------- wiring

$('train-folder').addEventListener('change', (e) => {
  const files = [...e.target.files];
  addFiles(files.map((file) => ({ className: folderClass(file.webkitRelativePath) || $('train-class').value, name: file.webkitRelativePath || file.name, file })));
  e.target.value = '';
});
$('train-files').addEventListener('change', (e) => {
  const files = [...e.target.files];
  addFiles(files.map((file) => ({ className: $('train-class').value, name: file.name, file })));
  e.target.value = '';
});
const drop = $('train-drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const entries = [...e.dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  const files = await walkEntries(entries);
  addFiles(files.map(({ path, file }) => ({ className: folderClass(path) || $('train-class').value, name: path, file })));
});
$('train').addEventListener('click', train);
$('train-resume').addEventListener('click', resume);
$('train-stop').addEventListener('click', () => {
  training.stopRequested = true;
  setStatus('train-status', 'stopping after this epoch…');
  refreshTraining();
});
$('train-clear').addEventListener('click', () => {
  training.set.clear();
  showSet();
  refreshTraining();
});
$('train-export').addEventListener('click', exportHead);
$('train-clip-weights').addEventListener('change', (e) => e.target.files[0] && act('load CLIP', 'train-status', () => loadClipWeights(e.target.files[0])));
$('train-clip-vocab').addEventListener('change', (e) => e.target.files[0] && act('load CLIP vocabulary', 'train-status', () => loadClipVocab(e.target.files[0])));
$('train-backbone').addEventListener('change', () => {
  showDefaults();
  refreshTraining();
});
$('train-focus').addEventListener('change', refreshTraining);

// The fields start at medfocus train's defaults (the chosen backbone's); what this device cannot train is switched off and says why.
const attentionProblem = demo.gpu && lib.attentionTrainingProblem(demo.gpu);
const clipProblem = demo.gpu && lib.attentionTrainingProblem(demo.gpu, 'clip');
for (const option of $('train-focus').options) {
  if (!attentionProblem || !lib.trainsThroughAttention({ backbone: 'sam-encoder', focus: option.value })) continue;
  option.disabled = true;
  option.textContent += ' (not on this device)';
  option.title = attentionProblem;
}
const clipOption = [...$('train-backbone').options].find((o) => o.value === 'clip');
if (clipProblem) {
  clipOption.disabled = true;
  clipOption.textContent += ' (not on this device)';
  clipOption.title = clipProblem;
}
if (attentionProblem) $('train-memory').textContent = `Focus attention/both/learned: ${attentionProblem}.`;

function showDefaults() {
  const defaults = backboneDefaults();
  $('train-focus').value = attentionProblem && lib.trainsThroughAttention({ backbone: 'sam-encoder', focus: defaults.focus }) ? 'overlay' : defaults.focus;
  $('train-epochs').value = String(defaults.epochs);
  $('train-seed').value = String(defaults.seed);
  $('train-batch').value = String(defaults.batch);
  $('train-points').value = String(defaults.pointsPerSide);
}

showDefaults();
demo.refreshHooks.push(refreshTraining);
refreshTraining();
