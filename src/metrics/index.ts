// Metrics: the official SNI evaluation (exact match, ROUGE-1, ROUGE-L) and rank classification.
export { porterStem } from "./porter.js";
export { rouge1, rougeL, rougeTokenize, rougeLTokens, rougeNTokens, lcsLength } from "./rouge.js";
export type { RougeScore } from "./rouge.js";
export {
  exactMatch,
  normalizeAnswer,
  scorePrediction,
  scoreItems,
  scoreItemsDetailed,
  categoryKey,
  pyRound4,
  pyStrip,
  pyCollapseWhitespace,
  PY_PUNCTUATION,
} from "./sni.js";
export type { ItemScores, SniResults, ScoreReport } from "./sni.js";
export { rankClassify, rankClassificationAccuracy } from "./rank.js";
export type { RankItem } from "./rank.js";
