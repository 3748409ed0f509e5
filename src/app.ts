// Browser-safe entry of the MedFocus application (`import … from
// 'medfocus/app'`): focus modes, the image → model-input pipeline, the
// classifiers, web heads and training in the page. The engine it runs on
// (device, tensors, kernels, models) is the package's main entry (index.ts);
// the Node-only parts of the application are app-node.ts.

export * from './medfocus/metrics.js';
export * from './medfocus/focus.js';
export { ClipPromptClassifier, SamPoolClassifier } from './medfocus/backbones.js';
export type { ClipClassifierOptions, SamClassifierOptions, SamPooling } from './medfocus/backbones.js';
export type { Classifier, Batch, RegionBatch } from './medfocus/classifier.js';
export * from './medfocus/head-spec.js';
export * from './medfocus/head.js';
export { FocusPipeline, MemoryCache, SAM_CHANNELS, applyFocus, makeBatch, mobileSamSegmenter, pipelineMaskFilters, predictImages, workImage } from './medfocus/pipeline.js';
export type { AppliedFocus, FocusSettings, FocusView, MaskFilters, PipelineCache, PipelineModels, PreparedDetails, PreparedImage } from './medfocus/pipeline.js';
export { epochOrder, samPoolClassifier, trainEpochs } from './medfocus/train-loop.js';
export type { TrainLoopOptions, TrainStep } from './medfocus/train-loop.js';
export { HEAD_CLIP, HEAD_JSON, HEAD_TENSORS, clipHeadSpec, headJsonText, headNeedsMobileSam, headTensorsBytes, samHeadSpec, webHeadProblem } from './medfocus/head-export.js';
export type { ClipHeadSettings, HeadFocusSettings, SamHeadSettings } from './medfocus/head-export.js';
export { CLIP_TRAIN_DEFAULTS, SAM_ENCODER_TRAIN_DEFAULTS, TrainingSet, WebTrainingRun, attentionTrainingProblem, checkWebTrainSettings, mobileSamFileIds, plannedTrainingBytes, trainsThroughAttention } from './medfocus/web-trainer.js';
export type { PrepareOptions, RefusedFile, TrainableClassifier, TrainingImage, WebTrainSettings } from './medfocus/web-trainer.js';
export { IndexedDbCache } from './medfocus/idb-cache.js';
export type { CacheStats } from './medfocus/idb-cache.js';
