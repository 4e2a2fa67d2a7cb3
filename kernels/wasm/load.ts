// Loading the WebAssembly kernels (built by kernels/wasm/build.mjs): the one loader for Node (the
// file from disk) and the browser (fetched; Vite bundles the .wasm as an asset through
// `new URL(..., import.meta.url)`, the test server serves it as a file).
//
// Two variants of the same module: 'shared' imports a shared memory (threads), 'plain' a
// non-shared one. Compiling is asynchronous in browsers (and must be: Chromium refuses to compile
// more than 4 KB synchronously on the main thread), so `loadWasmModule` is awaited once, when a
// model is loaded (src/engine/weights.ts); afterwards `wasmModule` answers synchronously. In Node
// `wasmModule` can also read and compile the file synchronously on first use.

export type WasmVariant = 'shared' | 'plain';

function moduleUrl(variant: WasmVariant): URL {
  // two literal URLs, so that bundlers see both assets
  return variant === 'shared'
    ? new URL('./build/kernels-shared.wasm', import.meta.url)
    : new URL('./build/kernels.wasm', import.meta.url);
}

const compiled = new Map<WasmVariant, WebAssembly.Module>();
const loading = new Map<WasmVariant, Promise<WebAssembly.Module | null>>();
const failures = new Map<WasmVariant, string>();

const MISSING = 'the WebAssembly kernels are not built (run npm run build:wasm)';

/** Node's fs, synchronously, where the runtime offers it (Node ≥ 20.16). */
function nodeFs(): { readFileSync(u: URL): Uint8Array; existsSync(u: URL): boolean } | null {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return (p?.getBuiltinModule?.('node:fs') as ReturnType<typeof nodeFs>) ?? null;
}

/** The compiled module if it is loaded (in Node: loaded now, synchronously); else null (see wasmFailure). */
export function wasmModule(variant: WasmVariant): WebAssembly.Module | null {
  const m = compiled.get(variant);
  if (m) return m;
  const url = moduleUrl(variant);
  const fs = url.protocol === 'file:' ? nodeFs() : null;
  if (!fs || failures.has(variant)) return null;
  try {
    if (!fs.existsSync(url)) throw new Error(MISSING);
    const mod = new WebAssembly.Module(fs.readFileSync(url) as BufferSource);
    compiled.set(variant, mod);
    return mod;
  } catch (e) {
    failures.set(variant, describe(e));
    return null;
  }
}

/** Loads and compiles the module once; null when it cannot (wasmFailure says why). */
export function loadWasmModule(variant: WasmVariant): Promise<WebAssembly.Module | null> {
  const m = compiled.get(variant);
  if (m) return Promise.resolve(m);
  let p = loading.get(variant);
  if (!p) {
    p = (async () => {
      try {
        const url = moduleUrl(variant);
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
        compiled.set(variant, mod);
        failures.delete(variant);
        return mod;
      } catch (e) {
        failures.set(variant, describe(e));
        return null;
      }
    })();
    loading.set(variant, p);
  }
  return p;
}

/** Why the module could not be had, or null. */
export function wasmFailure(variant: WasmVariant): string | null {
  return compiled.has(variant) ? null : failures.get(variant) ?? 'the WebAssembly kernels have not been loaded yet (await loadWasmModule)';
}

function describe(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // a browser without SIMD (or threads, for the shared variant) fails to compile
  return e instanceof WebAssembly.CompileError ? `this WebAssembly engine cannot compile the kernels (SIMD needed): ${msg}` : msg;
}
