#!/usr/bin/env node
// The `glassbox` command. TypeScript runs through tsx, so the CLI needs no build step.
import { register } from 'tsx/esm/api';
import { existsSync } from 'node:fs';

// The WebAssembly kernels are a build output (kernels/wasm/build.mjs); build them on first use
// when the compiler is installed (a source checkout). Without them the engine runs the
// JavaScript kernels and says so.
if (!['kernels-shared.wasm', 'kernels-relaxed-shared.wasm'].every((f) => existsSync(new URL(`../../kernels/wasm/build/${f}`, import.meta.url)))) {
  try {
    const { buildWasm } = await import('../../kernels/wasm/build.mjs');
    await buildWasm({ log: (m) => console.error(`glassbox: ${m}`) });
  } catch (e) {
    console.error(`glassbox: the WebAssembly kernels could not be built (${e.message.split('\n')[0]}); using the JavaScript kernels`);
  }
}

register();
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv.slice(2));
