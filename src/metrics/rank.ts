// Rank classification: the model scores every answer option (e.g. the log-likelihood of the option as the
// target) and the highest-scoring option is its answer (as T0 / P3 and INSTA evaluate multiple choice).

export interface RankItem {
  /** One score per option; higher is better (e.g. summed or mean token log-probabilities). */
  scores: number[];
  /** The gold option: its index, or its text when `options` is given. */
  gold: number | string;
  options?: string[];
}

/** Index of the best option; ties go to the first (numpy.argmax). NaN scores never win. */
export function rankClassify(scores: number[]): number {
  if (scores.length === 0) throw new Error("rankClassify: no option scores");
  let best = -1;
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i])) continue;
    if (best < 0 || scores[i] > scores[best]) best = i;
  }
  return best < 0 ? 0 : best;
}

function goldIndex(item: RankItem, i: number): number {
  if (typeof item.gold === "number") {
    if (!Number.isInteger(item.gold) || item.gold < 0 || item.gold >= item.scores.length)
      throw new RangeError(`rankClassificationAccuracy: item ${i}: gold index ${item.gold} out of range 0..${item.scores.length - 1}`);
    return item.gold;
  }
  if (!item.options) throw new Error(`rankClassificationAccuracy: item ${i}: gold is text but no options were given`);
  if (item.options.length !== item.scores.length)
    throw new Error(`rankClassificationAccuracy: item ${i}: ${item.options.length} options but ${item.scores.length} scores`);
  const g = item.options.indexOf(item.gold);
  if (g < 0) {
    const t = item.gold.trim().toLowerCase();
    const h = item.options.findIndex((o) => o.trim().toLowerCase() === t);
    if (h < 0) throw new Error(`rankClassificationAccuracy: item ${i}: gold '${item.gold}' is not one of the options`);
    return h;
  }
  return g;
}

/** Accuracy (0..1) of rank classification over items. */
export function rankClassificationAccuracy(items: RankItem[]): number {
  if (items.length === 0) throw new Error("rankClassificationAccuracy: no items");
  let correct = 0;
  items.forEach((it, i) => {
    if (rankClassify(it.scores) === goldIndex(it, i)) correct++;
  });
  return correct / items.length;
}
