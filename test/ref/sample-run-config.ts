// A valid run config (a sam-encoder run at 5 % of busi3), for the run-folder
// tests and the fuzzer's config.json seeds.

import type { RunConfig } from '../../src/medfocus/checkpoint.js';

export const SAMPLE_RUN_CONFIG: RunConfig = {
  version: 1,
  backbone: 'sam-encoder',
  focus: 'attention',
  data: '/data/busi3',
  classes: ['benign', 'malignant', 'normal'],
  fraction: 0.05,
  seed: 0,
  epochs: 30,
  lr: 0.003,
  weightDecay: 1e-4,
  batch: 16,
  prompts: 4,
  strength: 4,
  overlayAlpha: 0.5,
  samSize: 512,
  pointsPerSide: 8,
  featureGrid: 16,
  trainImages: 23,
  trainSet: '0123456789abcdef',
};
