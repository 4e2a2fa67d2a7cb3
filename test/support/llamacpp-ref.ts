// Raw logits from llama.cpp (node-llama-cpp, installed on demand by ./llamacpp.mjs) for a GGUF
// and a list of token ids: the external reference of the parity test.
//
// Settings (DESIGN.md, "Checking numbers"): CPU only, 2 threads, flash attention off and an F32
// KV cache (with the defaults, flash attention and an F16 cache, llama.cpp's own noise is about
// 6e-4), one batch holding every token, and the ids passed as they are (controlledEvaluate adds
// no BOS).

import { loadLlama } from './llamacpp.mjs';

// The few node-llama-cpp calls used here (the package is not a dependency, so it has no types).
interface LlamaModel {
  createContext(o: Record<string, unknown>): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface LlamaContext {
  contextSize: number;
  getSequence(): {
    controlledEvaluate(input: [number, { generateNext: { logits: true } }][]): Promise<({ next: { logits?: Map<number, number> } } | undefined)[]>;
  };
  dispose(): Promise<void>;
}

let llama: Promise<any> | null = null;

/** One Float32Array of vocabulary size per position: llama.cpp's logits after tokens[0..i]. */
export async function referenceLogits(ggufPath: string, tokens: number[]): Promise<Float32Array[]> {
  llama ??= loadLlama({ maxThreads: 2 });
  const l = await llama;
  const model: LlamaModel = await l.loadModel({ modelPath: ggufPath, gpuLayers: 0, useMmap: false });
  try {
    const n = Math.max(tokens.length, 1);
    // The context must be LARGER than the token list: when the list fills it exactly,
    // node-llama-cpp shifts the context (drops the first tokens) before evaluating the last one,
    // and that position's logits come out of a different sequence.
    const ctx = await model.createContext({
      contextSize: n + 16, batchSize: n, sequences: 1, threads: 2, flashAttention: false,
      experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
    });
    try {
      const out = await ctx.getSequence().controlledEvaluate(tokens.map((t) => [t, { generateNext: { logits: true } }]));
      return out.map((r, i) => {
        const m = r?.next.logits;
        if (!m) throw new Error(`llama.cpp returned no logits for position ${i} of ${ggufPath}`);
        const row = new Float32Array(m.size);
        for (const [id, v] of m) {
          if (!(id >= 0 && id < m.size)) throw new Error(`llama.cpp logits of position ${i} have token id ${id} outside 0..${m.size - 1}`);
          row[id] = v;
        }
        return row;
      });
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}
