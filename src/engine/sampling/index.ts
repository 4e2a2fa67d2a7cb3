// The sampler chain, stage by stage (see README.md). One import for callers.

export { type Candidates, entropyOf, fromLogits, moveLogits, prefix, probAt, probReader, probsOf, suffix } from './candidates.ts';
export {
  dry, dryRepeatLengths, type DryOptions, logitBias, minP, penalties, type PenaltyOptions, temperature, type TemperatureOptions,
  tokenCounts, topK, topNSigma, topP, typicalP, xtc, type XtcOptions,
} from './stages.ts';
export { type MirostatOptions, mirostatStart, type MirostatState, mirostatUpdate, mirostatV1Truncate, mirostatV2Truncate } from './mirostat.ts';
export { type ChainOptions, DEFAULT_ORDER, isResolved, MIROSTAT_ORDER, type ResolvedOptions, resolveOptions, type StageName, STAGES } from './options.ts';
export { type ChainInput, type ChainResult, ChainSampler, finalDistribution, randomFor, runChain, type StageReport, XTC_SALT } from './chain.ts';
