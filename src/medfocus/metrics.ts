// Classification metrics of a test split: accuracy, balanced accuracy,
// macro-F1, per-class recall and the confusion matrix (sklearn's
// definitions). Their pictures are in src/render/charts.ts; statistics over
// seeds in src/util/stats.ts. No Node built-ins: runs in browsers too.

export interface EvaluationResult {
  classes: string[];
  /** Fraction of all predictions that are right. */
  accuracy: number;
  /** Mean recall over the classes that have test samples (as sklearn's balanced_accuracy_score). */
  balancedAccuracy: number;
  /**
   * Mean F1 = 2·TP / (2·TP + FP + FN) over the classes that occur among the
   * labels or the predictions (as sklearn's f1_score(average='macro') with its
   * default labels; a class predicted but never present scores 0).
   */
  macroF1: number;
  /** Recall per class name; NaN for a class with no samples. */
  perClassRecall: Record<string, number>;
  /** confusion[true][predicted] = count. */
  confusion: number[][];
  count: number;
}

/** Accuracy, balanced accuracy, per-class recall and the confusion matrix of integer labels and predictions. */
export function evaluatePredictions(labels: number[], predicted: number[], classes: string[]): EvaluationResult {
  const n = classes.length;
  if (!Array.isArray(classes) || n === 0) throw new Error('evaluatePredictions: classes is empty; expected the class names in label order');
  if (labels.length !== predicted.length) {
    throw new Error(`evaluatePredictions: ${labels.length} labels but ${predicted.length} predictions; expected one prediction per label`);
  }
  if (labels.length === 0) throw new Error('evaluatePredictions: no labels; nothing to evaluate');
  const check = (what: string, values: number[]) =>
    values.forEach((v, i) => {
      if (!Number.isInteger(v) || v < 0 || v >= n) throw new Error(`evaluatePredictions: ${what}[${i}] is ${v}; expected an integer class index in [0, ${n - 1}]`);
    });
  check('labels', labels);
  check('predicted', predicted);
  const confusion = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < labels.length; i++) confusion[labels[i]][predicted[i]]++;
  let correct = 0;
  let recallSum = 0;
  let present = 0;
  let f1Sum = 0;
  let f1Classes = 0;
  const perClassRecall: Record<string, number> = {};
  classes.forEach((name, c) => {
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const predictedAs = confusion.reduce((a, row) => a + row[c], 0);
    const tp = confusion[c][c];
    if (support + predictedAs > 0) {
      f1Sum += (2 * tp) / (support + predictedAs); // 2TP + FP + FN = support + predicted
      f1Classes++;
    }
    correct += confusion[c][c];
    const recall = support > 0 ? confusion[c][c] / support : NaN;
    perClassRecall[name] = recall;
    if (support > 0) {
      recallSum += recall;
      present++;
    }
  });
  return {
    classes: [...classes],
    accuracy: correct / labels.length,
    balancedAccuracy: recallSum / present,
    macroF1: f1Sum / f1Classes,
    perClassRecall,
    confusion,
    count: labels.length,
  };
}
