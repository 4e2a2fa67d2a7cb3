#!/usr/bin/env node
// Builds the WebAssembly kernels from their AssemblyScript sources (kernels/wasm/*.as.ts) with the
// `assemblyscript` compiler from npm (a devDependency, no install scripts):
//   kernels/wasm/build/kernels.wasm         imports a non-shared memory (one thread: browsers that
//                                           are not cross-origin isolated, `shared: false` arenas)
//   kernels/wasm/build/kernels-shared.wasm  imports a shared memory (worker threads share it)
//   kernels/wasm/build/kernels-relaxed{,-shared}.wasm  the same with relaxed SIMD (load.ts picks
//                                           them where the engine has it)
// A module that imports a shared memory must be given a shared one, and vice versa, hence two
// builds of the same source, each with and without relaxed SIMD. The .wasm files are build outputs (.gitignore), made by
// `npm run build:wasm`, before start/build/test/bench (package.json pre-scripts) and by the CLI
// when they are missing. Incremental: nothing is done when the outputs are the ones the last build
// made from sources with the same contents (build/stamp.json holds SHA-256s of both; a timestamp
// test would keep a .wasm copied in from another build, and benchmarks would run the wrong code).
//
// Each output is checked: SIMD on, one import (env.memory) and no data segment, because the
// imported memory is the weight arena: a data segment would be written over the weights.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const WASM_OUT_DIR = join(here, 'build');
const ENTRY = join(here, 'kernels.as.ts');
const OUTPUTS = [
  { file: 'kernels.wasm', shared: false, relaxed: false },
  { file: 'kernels-shared.wasm', shared: true, relaxed: false },
  { file: 'kernels-relaxed.wasm', shared: false, relaxed: true },
  { file: 'kernels-relaxed-shared.wasm', shared: true, relaxed: true },
];

const STAMP = join(WASM_OUT_DIR, 'stamp.json');

function sources() {
  return [...readdirSync(here).filter((f) => f.endsWith('.as.ts')).sort().map((f) => join(here, f)), fileURLToPath(import.meta.url)];
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** One hash of every source's name and contents (and this script's). */
function sourcesHash() {
  const h = createHash('sha256');
  for (const f of sources()) h.update(`${f.slice(here.length)}\0`).update(readFileSync(f)).update('\0');
  return h.digest('hex');
}

/** True when every output is the one the last build wrote from sources with these contents. */
export function wasmUpToDate() {
  let stamp;
  try { stamp = JSON.parse(readFileSync(STAMP, 'utf8')); } catch { return false; }
  if (stamp?.sources !== sourcesHash()) return false;
  return OUTPUTS.every(({ file }) => {
    const p = join(WASM_OUT_DIR, file);
    return existsSync(p) && stamp.outputs?.[file] === sha256(readFileSync(p));
  });
}

/** Section ids of a wasm binary, and (when `compile`) its imports as "module.name:kind" strings. */
function inspect(bytes, compile) {
  let at = 8;
  const ids = [];
  const leb = () => { let r = 0, s = 0, b; do { b = bytes[at++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80); return r >>> 0; };
  while (at < bytes.length) {
    const id = bytes[at++];
    const size = leb();
    ids.push(id);
    at += size;
  }
  if (!compile) return { ids, imports: ['env.memory:memory'] };
  const mod = new WebAssembly.Module(bytes);
  return { ids, imports: WebAssembly.Module.imports(mod).map((i) => `${i.module}.${i.name}:${i.kind}`) };
}

/**
 * Compiles both modules unless they are up to date. Returns what it did. Throws with the
 * compiler's messages on a compile error, and when `assemblyscript` is not installed.
 */
export async function buildWasm({ force = false, log = console.log } = {}) {
  if (!force && wasmUpToDate()) return { built: false };
  let asc;
  try {
    asc = (await import('assemblyscript/asc')).default;
  } catch (e) {
    throw new Error(`kernels/wasm: the AssemblyScript compiler is not installed (${e.message}); run npm install (it is a devDependency)`);
  }
  mkdirSync(WASM_OUT_DIR, { recursive: true });
  const t0 = performance.now();
  const stamp = { sources: sourcesHash(), outputs: {} };
  for (const { file, shared, relaxed } of OUTPUTS) {
    const out = join(WASM_OUT_DIR, file);
    const tmp = `${out}.tmp-${process.pid}`;
    let messages = '';
    const stream = { write(s) { messages += String(s); return true; } };
    const args = [
      ENTRY, '--outFile', tmp, '-O3', '--runtime', 'stub', '--noAssert', '--enable', 'simd',
      '--importMemory', '--initialMemory', '0', '--maximumMemory', '65536', '--use', 'abort=',
      ...(shared ? ['--sharedMemory', '--enable', 'threads'] : []),
      ...(relaxed ? ['--enable', 'relaxed-simd'] : []),
    ];
    const { error } = await asc.main(args, { stdout: stream, stderr: stream });
    if (error) throw new Error(`kernels/wasm: compiling ${file} failed:\n${messages.trim()}`);
    const bytes = readFileSync(tmp);
    // a Node without relaxed SIMD (Node 20) cannot compile the relaxed builds to list their
    // imports: those are the plain builds' (same source and options), checked just before
    const { ids, imports } = inspect(bytes, !relaxed || WebAssembly.validate(bytes));
    const problems = [];
    if (ids.includes(11)) problems.push('it has a data segment (it would be written over the weight arena)');
    if (imports.length !== 1 || imports[0] !== 'env.memory:memory') problems.push(`it imports ${imports.join(', ')} (only env.memory is provided)`);
    if (problems.length) throw new Error(`kernels/wasm: ${file}: ${problems.join('; ')}`);
    renameSync(tmp, out);
    stamp.outputs[file] = sha256(bytes);
  }
  writeFileSync(STAMP, `${JSON.stringify(stamp, null, 1)}\n`);
  log(`kernels/wasm: built ${OUTPUTS.map((o) => o.file).join(' and ')} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { built: true };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  buildWasm({ force: process.argv.includes('--force') }).catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
