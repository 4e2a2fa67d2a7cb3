// The engine in a web worker. The page talks to it through src/worker/client.ts; everything the
// engine does is in src/engine/api.ts, the same object Node uses in-thread.
import { expose } from 'comlink';
import './wire.ts';
import { Engine } from '../engine/api.ts';
import { resolveModelSource } from './loading/index.ts';

expose(new Engine({ resolveSource: resolveModelSource }));
