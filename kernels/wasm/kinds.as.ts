// AssemblyScript: the numbers that TypeScript and WebAssembly must agree on, defined once here.
// kernels.as.ts re-exports them as WebAssembly globals and kernels/wasm/runtime.ts reads them from
// the instance (never copied by hand).

// Tensor types (src/formats/tensor.ts TensorTypeName).
export const K_F32: i32 = 0;
export const K_F16: i32 = 1;
export const K_BF16: i32 = 2;
export const K_Q4_0: i32 = 3;
export const K_Q4_1: i32 = 4;
export const K_Q5_0: i32 = 5;
export const K_Q5_1: i32 = 6;
export const K_Q8_0: i32 = 7;
export const K_Q2_K: i32 = 8;
export const K_Q3_K: i32 = 9;
export const K_Q4_K: i32 = 10;
export const K_Q5_K: i32 = 11;
export const K_Q6_K: i32 = 12;
export const K_Q8_K: i32 = 13;
export const K_Q8_G64: i32 = 14;

/**
 * 1 in the relaxed-SIMD builds (kernels-relaxed*.wasm): products with 4- and 5-bit weights (Q4_0
 * Q4_1 Q5_0 Q5_1 with several tokens, Q4_0 Q4_1 decode, Q4_K Q5_K) then keep the weight levels
 * unsigned as bytes and the activations as i8, and multiply 16 pairs per
 * i32x4.relaxed_dot_i8x16_i7x16_add_s (the weights are its 7-bit operand: 0..31, where every engine
 * gives the same exact sums). TypeScript reads it to know which activation layouts to ask for
 * (interleaveQ8, narrowQ8K) and to say which build runs.
 */
export const RELAXED: i32 = ASC_FEATURE_RELAXED_SIMD ? 1 : 0;

// The job control block (i32 words) through which the main thread hands a job to the workers
// (kernels/wasm/pool.ts): the job word holds (generation << 8) | number of slices, so that a
// worker reads both at once; pending counts the workers still running; next is the chunk counter
// of a matrix product (reset with each job); op and the arguments follow.
export const CTL_JOB: i32 = 0;
export const CTL_PENDING: i32 = 1;
export const CTL_OP: i32 = 2;
/** The next chunk of rows of a matrix product to hand out (threads take chunks as they finish: kernels.as.ts run). */
export const CTL_NEXT: i32 = 3;
export const CTL_ARGS: i32 = 4;
/** Word CTL_READY + i is set to 1 when worker i has instantiated the module. */
export const CTL_READY: i32 = 32;
export const CTL_MAX_WORKERS: i32 = 31;
export const CTL_WORDS: i32 = 64;

// Jobs.
export const OP_MATMUL_Q8: i32 = 1;      // 32-block weights × Q8_0/Q8_1 activations
export const OP_MATMUL_K: i32 = 2;       // 256-block weights × Q8_K activations
export const OP_MATMUL_F32: i32 = 3;     // F32 / F16 / BF16 / Q8_G64 weights × f32 activations
export const OP_ATTENTION: i32 = 4;
export const OP_LENS_ROWS: i32 = 5;      // what the logit lens keeps of rows of logits (lens.as.ts)
