// Loading the WebAssembly kernels (built by kernels/wasm/build.mjs): the one loader for Node (the
// file from disk) and the browser (fetched; Vite bundles the .wasm as an asset through
// `new URL(..., import.meta.url)`, the test server serves it as a file).
//
// Two variants of the same module: 'shared' imports a shared memory (threads), 'plain' a
// non-shared one. Each is built twice: with relaxed SIMD (kernels-relaxed*.wasm; its 8-bit dot
// product speeds up prefill with 4- and 5-bit weights, with bit-identical results) and without,
// for engines that lack it (Safari; Node 20, which has it only behind a flag and, measured there,
// gives wrong sums in its baseline compiler). The relaxed build is used where the engine
// validates a relaxed-SIMD function without flags, unless `preferRelaxedSimd(false)` says not.
// Compiling is asynchronous in browsers (and must be: Chromium refuses to compile more than 4 KB
// synchronously on the main thread), so `loadWasmModule` is awaited once, when a model is loaded
// (src/engine/weights.ts); afterwards `wasmModule` answers synchronously. In Node `wasmModule`
// can also read and compile the file synchronously on first use.

export type WasmVariant = 'shared' | 'plain';

function moduleUrl(variant: WasmVariant, relaxed: boolean): URL {
  // literal URLs, so that bundlers see every asset
  if (relaxed) {
    return variant === 'shared'
      ? new URL('./build/kernels-relaxed-shared.wasm', import.meta.url)
      : new URL('./build/kernels-relaxed.wasm', import.meta.url);
  }
  return variant === 'shared'
    ? new URL('./build/kernels-shared.wasm', import.meta.url)
    : new URL('./build/kernels.wasm', import.meta.url);
}

// (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2 i32x4.relaxed_dot_i8x16_i7x16_add_s)
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x93, 0x02, 0x0b,
]);
let relaxedSupported: boolean | undefined;
let relaxedWanted = true;

/** Whether this engine runs relaxed SIMD as shipped (no flags). */
export function relaxedSimdSupported(): boolean {
  if (relaxedSupported === undefined) {
    try { relaxedSupported = WebAssembly.validate(RELAXED_PROBE); } catch { relaxedSupported = false; }
  }
  return relaxedSupported;
}

/** Whether kernel modules loaded from now on are the relaxed-SIMD builds (default: where supported).
 *  For tests and benchmarks comparing the two; modules already made keep theirs. */
export function preferRelaxedSimd(on: boolean): void {
  relaxedWanted = on;
}

/** Whether the modules loaded now are the relaxed-SIMD builds. */
export function usesRelaxedSimd(): boolean {
  return relaxedWanted && relaxedSimdSupported();
}

const key = (variant: WasmVariant, relaxed: boolean) => `${variant}${relaxed ? ':relaxed' : ''}`;
const compiled = new Map<string, WebAssembly.Module>();
const loading = new Map<string, Promise<WebAssembly.Module | null>>();
const failures = new Map<string, string>();

const MISSING = 'the WebAssembly kernels are not built (run npm run build:wasm)';

/** Node's fs, synchronously, where the runtime offers it (Node ≥ 20.16). */
function nodeFs(): { readFileSync(u: URL): Uint8Array; existsSync(u: URL): boolean } | null {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return (p?.getBuiltinModule?.('node:fs') as ReturnType<typeof nodeFs>) ?? null;
}

/** The compiled module if it is loaded (in Node: loaded now, synchronously); else null (see wasmFailure). */
export function wasmModule(variant: WasmVariant): WebAssembly.Module | null {
  const relaxed = usesRelaxedSimd();
  const id = key(variant, relaxed);
  const m = compiled.get(id);
  if (m) return m;
  const url = moduleUrl(variant, relaxed);
  const fs = url.protocol === 'file:' ? nodeFs() : null;
  if (!fs || failures.has(id)) return null;
  try {
    if (!fs.existsSync(url)) throw new Error(MISSING);
    const mod = new WebAssembly.Module(fs.readFileSync(url) as BufferSource);
    compiled.set(id, mod);
    return mod;
  } catch (e) {
    failures.set(id, describe(e));
    return null;
  }
}

/** Loads and compiles the module once; null when it cannot (wasmFailure says why). */
export function loadWasmModule(variant: WasmVariant): Promise<WebAssembly.Module | null> {
  const relaxed = usesRelaxedSimd();
  const id = key(variant, relaxed);
  const m = compiled.get(id);
  if (m) return Promise.resolve(m);
  let p = loading.get(id);
  if (!p) {
    p = (async () => {
      try {
        const url = moduleUrl(variant, relaxed);
        let bytes: ArrayBuffer | Uint8Array;
        if (url.protocol === 'file:') {
          const { readFile } = await import(/* @vite-ignore */ 'node:fs/promises');
          bytes = await readFile(url).catch(() => { throw new Error(MISSING); });
        } else {
          const res = await fetch(url);
          if (!res.ok) throw new Error(`${url.pathname}: HTTP ${res.status} (${MISSING})`);
          bytes = await res.arrayBuffer();
        }
        const mod = await WebAssembly.compile(bytes as BufferSource);
        compiled.set(id, mod);
        failures.delete(id);
        return mod;
      } catch (e) {
        failures.set(id, describe(e));
        return null;
      }
    })();
    loading.set(id, p);
  }
  return p;
}

/** Why the module could not be had, or null. */
export function wasmFailure(variant: WasmVariant): string | null {
  const id = key(variant, usesRelaxedSimd());
  return compiled.has(id) ? null : failures.get(id) ?? 'the WebAssembly kernels have not been loaded yet (await loadWasmModule)';
}

function describe(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // a browser without SIMD (or threads, for the shared variant) fails to compile
  return e instanceof WebAssembly.CompileError ? `this WebAssembly engine cannot compile the kernels (SIMD needed): ${msg}` : msg;
}
