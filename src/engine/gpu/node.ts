// WebGPU in Node, for the CLI: the `webgpu` npm package (Dawn), when it is installed. It is not a
// dependency of glassbox (a native binary of about 20 MB); `--backend webgpu` asks for it.
// On a machine without a GPU, Dawn finds Chromium's SwiftShader with
//   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json LD_LIBRARY_PATH=/usr/lib/chromium

import { UsageError } from '../errors.ts';

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

let loaded: Promise<GPU> | null = null;

/** navigator.gpu for Node, from the `webgpu` package; a UsageError saying how to install it when it is missing. */
export function nodeGpu(flags: string[] = []): Promise<GPU> {
  loaded ??= (async () => {
    const name = 'webgpu'; // not a static import: the package is optional
    let mod: DawnModule;
    try {
      mod = (await import(/* @vite-ignore */ name)) as DawnModule;
    } catch {
      loaded = null;
      throw new UsageError(undefined, "WebGPU in Node needs the 'webgpu' package: npm install --no-save webgpu");
    }
    // GPUBufferUsage, GPUMapMode, ... as the browser has them
    for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    return mod.create(flags);
  })();
  return loaded;
}
