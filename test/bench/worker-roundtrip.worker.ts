// The Node stand-in for src/worker/worker.ts in test/bench/worker-roundtrip.ts: the same Engine
// exposed with comlink over a worker_threads port (comlink's Node adapter), reading model files
// from disk ({kind: 'local', paths} are file paths here).
import { parentPort } from 'node:worker_threads';
import type { MessagePort, Worker } from 'node:worker_threads';
import { expose, type Endpoint } from 'comlink';
import '../../src/worker/wire.ts';
import { Engine, type SourceResolver } from '../../src/engine/api.ts';
import { fileSource } from '../../src/formats/node-source.ts';

/** A worker_threads port or worker as a comlink Endpoint (what comlink's node-adapter does). */
export function nodeEndpoint(port: MessagePort | Worker): Endpoint {
  const wrapped = new WeakMap<object, (data: unknown) => void>();
  const fn = (l: EventListenerOrEventListenerObject) => (data: unknown) => {
    const event = { data } as MessageEvent;
    if (typeof l === 'function') l(event); else l.handleEvent(event);
  };
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => port.postMessage(message, transfer as never),
    addEventListener: (_type: string, l: EventListenerOrEventListenerObject) => {
      const f = fn(l);
      wrapped.set(l, f);
      port.on('message', f);
    },
    removeEventListener: (_type: string, l: EventListenerOrEventListenerObject) => {
      const f = wrapped.get(l);
      if (f) port.off('message', f);
    },
  };
}

export const diskResolver: SourceResolver = async (source) => {
  if (source.kind !== 'local') throw new Error(`the benchmark worker reads files from disk, not '${source.kind}' sources`);
  const sources = await Promise.all(source.paths.map((p) => fileSource(p)));
  return { sources, key: `disk:${source.paths.join('|')}`, label: source.paths.join(', '), warnings: [] };
};

if (parentPort) expose(new Engine({ resolveSource: diskResolver }), nodeEndpoint(parentPort));
