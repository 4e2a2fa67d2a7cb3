// The fuzz worker: runs runner.ts with the options main.ts sent, reporting progress through shared
// memory so the main thread can name the input that hangs or exhausts memory.
import { parentPort, workerData } from 'node:worker_threads';
import { runFuzz, type RunOptions } from './runner.ts';

const { opts, progress } = workerData as { opts: RunOptions; progress: SharedArrayBuffer };
const report = await runFuzz({ ...opts, progress: new Int32Array(progress) });
parentPort!.postMessage(report);
