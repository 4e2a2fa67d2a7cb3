// The one Markdown table of `npm run bench` (test/bench/run.ts; test/bench/browser-cpu.ts prints
// its part of it alone): per model, a row for each engine — glassbox on the CPU (1 and 2 threads)
// and llama.cpp in Node, glassbox on the CPU and on WebGPU and wllama in headless Chromium — with
// each glassbox row's ratio to its peer, measured in the same run (llama.cpp in Node, wllama at the
// same thread count in Chromium).

export interface TableRow {
  engine: string;
  /** 'Node' or 'Chromium'. */
  where: string;
  /** Threads, or a word for WebGPU. */
  threads: string;
  /** Best of the timed runs, after a warm-up; undefined when the engine did not run (see `note`). */
  prefill?: number;
  /** The first prefill of the process or page: the warm-up's. */
  cold?: number;
  decode?: number;
  peakMb?: number;
  /** RSS when the process started, before the model: peakMb − startMb is what the model costs. */
  startMb?: number;
  /** Prefill time with every attention pattern and residual hook recorded / without. */
  capture?: number;
  /** Peak RSS after the recording runs. */
  captureMb?: number;
  /** The row the ratios are taken against. */
  peer?: { name: string; prefill: number; decode: number };
  /** A peer's own row (its ratios are 1). */
  reference?: boolean;
  /** Why the engine did not run, or a word on it. */
  note?: string;
}

export interface TableModel { name: string; prompt: number; gen: number; rows: TableRow[] }

/** Numbers with three significant figures at most, thousands grouped. */
export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '—';
  const s = x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
  return x >= 1000 ? Number(s).toLocaleString('en-US') : s;
}

const ratio = (a: number | undefined, b: number | undefined): string => (a !== undefined && b ? (a / b).toFixed(2) : '—');

export function benchTable(models: TableModel[]): string[] {
  const out = [
    '| model (P / G) | engine | in | threads | prefill tok/s | first prefill tok/s | decode tok/s | peak RSS MB (above start) | capture × time | prefill ratio | decode ratio | ratio to |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const m of models) {
    m.rows.forEach((r, i) => {
      const name = i === 0 ? `${m.name} (${m.prompt} / ${m.gen})` : '';
      const ran = r.prefill !== undefined;
      out.push(`| ${name} | ${r.engine}${r.note ? ` (${r.note})` : ''} | ${r.where} | ${r.threads} | ${fmt(r.prefill)} | ${fmt(r.cold)} | ${fmt(r.decode)} | ${fmt(r.peakMb)}${r.peakMb !== undefined && r.startMb !== undefined ? ` (${fmt(r.peakMb - r.startMb)})` : ''} | ${r.capture === undefined ? '—' : `×${r.capture.toFixed(2)}${r.captureMb ? ` (${fmt(r.captureMb)} MB)` : ''}`} | ${ran && r.peer ? ratio(r.prefill, r.peer.prefill) : ran && r.reference ? '1' : '—'} | ${ran && r.peer ? ratio(r.decode, r.peer.decode) : ran && r.reference ? '1' : '—'} | ${ran && r.peer ? r.peer.name : '—'} |`);
    });
  }
  return out;
}
