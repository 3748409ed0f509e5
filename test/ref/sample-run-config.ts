// A valid run config (a sam-encoder run at 5 % of busi3 with the training
// defaults), for the run-folder tests and the fuzzer's config.json seeds.

import type { RunConfig } from '../../src/medfocus/checkpoint.js';
import { SAM_ENCODER_TRAIN_DEFAULTS } from '../../src/medfocus/web-trainer.js';

const { focus, seed, epochs, lr, weightDecay, batch, prompts, overlayAlpha, samSize, pointsPerSide, featureGrid } = SAM_ENCODER_TRAIN_DEFAULTS;

// The keys in config.json's order (the fuzzer mutates this JSON).
export const SAMPLE_RUN_CONFIG: RunConfig = {
  version: 1,
  backbone: 'sam-encoder',
  focus,
  data: '/data/busi3',
  classes: ['benign', 'malignant', 'normal'],
  fraction: 0.05,
  seed, epochs, lr, weightDecay, batch, prompts, strength: 4, overlayAlpha, samSize, pointsPerSide, featureGrid,
  trainImages: 23,
  trainSet: '0123456789abcdef',
};
