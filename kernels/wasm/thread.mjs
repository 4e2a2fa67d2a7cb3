// A kernel worker thread (started by kernels/wasm/pool.ts): a Web Worker in browsers, a
// worker_threads Worker in Node (which imports this file and calls serve). Plain JavaScript, so
// that it runs without a TypeScript loader in either.
//
// It instantiates the kernels on the shared weight memory, marks itself ready in the control block,
// then loops forever: wait for the job word to change (spin a little, then Atomics.wait), run its
// slice of the job when it has one (slice index + 1: the calling thread takes slice 0), count
// itself out of `pending` and wake the caller when it is the last. A job of 0 slices ends the loop.

const SPIN = 20000;   // ~50 µs of polling before sleeping: jobs come in bursts (a decode step)

/** init: { module: WebAssembly.Module, memory: WebAssembly.Memory (shared), ctl: byte offset, index } */
export function serve(init, post) {
  const { module, memory, ctl, index } = init;
  let x;
  try {
    x = new WebAssembly.Instance(module, { env: { memory } }).exports;
  } catch (e) {
    post({ error: String(e && e.message ? e.message : e) });
    return;
  }
  const JOB = x.CTL_JOB.value, PENDING = x.CTL_PENDING.value, READY = x.CTL_READY.value;
  const words = new Int32Array(memory.buffer, ctl, x.CTL_WORDS.value);
  let seen = Atomics.load(words, JOB);
  Atomics.store(words, READY + index, 1);
  post({ ready: index });
  for (;;) {
    let job = Atomics.load(words, JOB);
    for (let spin = 0; job === seen; spin++) {
      if (spin >= SPIN) { Atomics.wait(words, JOB, seen); spin = 0; }
      job = Atomics.load(words, JOB);
    }
    seen = job;
    const slices = job & 0xff;
    if (slices === 0) return;
    if (index + 1 < slices) {
      x.run(ctl, index + 1, slices);
      if (Atomics.sub(words, PENDING, 1) === 1) Atomics.notify(words, PENDING);
    }
  }
}

// In a browser worker: the first message is the init.
if (typeof WorkerGlobalScope !== 'undefined' && typeof self !== 'undefined' && self instanceof WorkerGlobalScope) {
  self.onmessage = (e) => serve(e.data, (m) => self.postMessage(m));
}
