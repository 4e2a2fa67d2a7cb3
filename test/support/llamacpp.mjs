// llama.cpp, the external reference (DESIGN.md, "Checking numbers"), installed on demand.
//
// node-llama-cpp is deliberately NOT a dependency in package.json: a normal install pulls its
// optional CUDA/Vulkan packages (about 725 MB). Here we take only the JavaScript package and its
// prebuilt linux-x64 CPU binary (about 85 MB) into <repo>/.cache/llamacpp, which .gitignore
// keeps out of the repository. npm 11 does not run node-llama-cpp's postinstall (not approved),
// and it is not needed: getLlama({ build: 'never', skipDownload: true }) loads the prebuilt
// binary from @node-llama-cpp/linux-x64 and never compiles or downloads anything.
//
// Used by test/run.mjs (before the Node tests), test/node/parity-llamacpp.test.ts (through
// test/support/llamacpp-ref.ts) and test/bench/run.ts.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const LLAMACPP_VERSION = '3.22.1';
const root = resolve(fileURLToPath(import.meta.url), '../../..');
/** Where the reference is installed: <repo>/.cache/llamacpp. */
export const LLAMACPP_DIR = join(root, '.cache', 'llamacpp');
const PACKAGES = [`node-llama-cpp@${LLAMACPP_VERSION}`, `@node-llama-cpp/linux-x64@${LLAMACPP_VERSION}`];

function installedVersion(dir, name) {
  const file = join(dir, 'node_modules', name, 'package.json');
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')).version ?? null;
  } catch {
    return null;
  }
}

function isInstalled(dir) {
  return installedVersion(dir, 'node-llama-cpp') === LLAMACPP_VERSION &&
    installedVersion(dir, '@node-llama-cpp/linux-x64') === LLAMACPP_VERSION;
}

function npmInstall(prefix) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const args = ['install', '--prefix', prefix, '--omit=optional', '--no-save', '--no-package-lock', '--no-audit', '--no-fund',
    ...PACKAGES];
  return new Promise((res, rej) => {
    const child = spawn(npm, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { out += b; });
    child.on('error', (e) => rej(new Error(`could not start npm (${e.message}); install Node's npm`)));
    child.on('close', (code) => {
      if (code === 0) res();
      else rej(new Error(`npm ${args.join(' ')} exited ${code}:\n${out.trim().split('\n').slice(-15).join('\n')}`));
    });
  });
}

let pending = null;

/**
 * Installs node-llama-cpp 3.22.1 with only its linux-x64 CPU binary into .cache/llamacpp when it
 * is not there yet, and returns the file: URL of its entry module, for `await import(url)`.
 * Throws (with npm's last lines) when it cannot: no network, wrong platform, npm missing.
 */
export function ensureLlamaCpp() {
  pending ??= (async () => {
    if (process.platform !== 'linux' || process.arch !== 'x64') {
      throw new Error(`the llama.cpp reference is set up for linux-x64 only (this is ${process.platform}-${process.arch})`);
    }
    if (!isInstalled(LLAMACPP_DIR)) {
      // Install beside the final place and rename, so that an interrupted install never leaves a
      // half-filled .cache/llamacpp that looks complete.
      const tmp = `${LLAMACPP_DIR}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });
      try {
        await npmInstall(tmp);
        if (!isInstalled(tmp)) throw new Error(`npm finished but ${PACKAGES.join(' and ')} are not both in ${tmp}`);
        rmSync(LLAMACPP_DIR, { recursive: true, force: true });
        renameSync(tmp, LLAMACPP_DIR);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    const entry = join(LLAMACPP_DIR, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
    if (!existsSync(entry)) throw new Error(`node-llama-cpp is installed in ${LLAMACPP_DIR} but ${entry} is missing; delete ${LLAMACPP_DIR} and retry`);
    return pathToFileURL(entry).href;
  })();
  // A failed attempt may be retried by a later call.
  pending.catch(() => { pending = null; });
  return pending;
}

/**
 * The options under which glassbox uses llama.cpp: CPU only, the prebuilt binary, never a build
 * or a download (so a missing binary is an error, not a 10-minute compile).
 */
export const LLAMA_OPTIONS = Object.freeze({
  gpu: false, build: 'never', skipDownload: true, usePrebuiltBinaries: true, progressLogs: false, logLevel: 'error',
});

/** ensureLlamaCpp, then getLlama(LLAMA_OPTIONS, ...extra). */
export async function loadLlama(extra = {}) {
  const url = await ensureLlamaCpp();
  const { getLlama } = await import(url);
  return getLlama({ ...LLAMA_OPTIONS, ...extra });
}
