// Interventions on the GPU (src/engine/edits.ts, applied as forward.ts applies them on the CPU).
//
// A chunk's edits are compiled once before its step is recorded: every primitive edit (kernels/
// edit) of every hook, their sources packed into one f32 buffer and their row lists and masks
// into one u32 buffer, uploaded together; the forward pass then records, at each hook, the edits
// of that hook. attn.hook_result and attn.hook_pattern are edited through their effect, as on the
// CPU: out += Σ_h (r'_h − r_h), with r_h = W_O · (z with every other head zeroed); and
// z += (P' − P) · V.

import type { ModelConfig } from '../config.ts';
import type { EditPlan } from '../edits.ts';
import { chunkEdits, resultTouched } from '../edits.ts';
import type { GpuContext, Step } from './context.ts';
import type { F32Ref, GpuTensor } from './tensor.ts';
import { EDIT_ADD, EDIT_ZERO, type EditRegion } from '../../../kernels/edit/edit.cpu.ts';
import { encodeEdit, encodePatternValues } from '../../../kernels/edit/edit.gpu.ts';
import { encodeMatmul } from '../../../kernels/matmul/matmul.gpu.ts';

interface Op { region: EditRegion; srcAt: number; rowsAt: number; maskAt: number }
interface HeadResult { h: number; othersAt: number; ops: Op[] }

export class GpuEdits {
  private readonly ops = new Map<string, Op[]>();
  private readonly results = new Map<number, { heads: HeadResult[]; touched: Uint32Array; touchedAt: number; allAt: number }>();
  private readonly patterns = new Map<number, { touched: Uint32Array; touchedAt: number }>();
  private readonly data: GPUBuffer;
  private readonly index: GPUBuffer;
  private readonly temps: GPUBuffer[] = [];

  constructor(private readonly ctx: GpuContext, plan: EditPlan, private readonly c: ModelConfig, private readonly start: number, private readonly n: number) {
    const floats: Float32Array[] = [], u32s: Uint32Array[] = [];
    let fAt = 0, uAt = 0;
    const addF = (a: Float32Array) => { const at = fAt; if (a.length) { floats.push(a); fAt += a.length; } return at; };
    const addU = (a: Uint32Array) => { const at = uAt; u32s.push(a); uAt += a.length; return at; };
    const H = c.nHeads, d = c.dModel, kLen = start + n;
    for (const [name, list] of plan.hooks) {
      const first = list[0]!;
      const ops: Op[] = chunkEdits(list, start, n, kLen, H).map(({ region, src }) => ({
        region, srcAt: addF(src), rowsAt: addU(region.rows), maskAt: region.mask ? addU(region.mask) : -1,
      }));
      if (ops.length === 0) continue;
      if (first.kind === 'pattern') {
        const touched = Uint32Array.from(new Set(ops.flatMap((o) => [...o.region.rows]))).sort();
        this.patterns.set(first.layer, { touched, touchedAt: addU(touched) });
      } else if (first.kind === 'result') {
        const t = resultTouched(list, start, n, H)!;
        const heads = t.heads.map((h): HeadResult => {
          const others = new Uint32Array(H).fill(1);
          others[h] = 0;
          const mine = ops.filter((o) => !o.region.mask || o.region.mask[h]).map((o): Op => ({
            ...o, maskAt: -1,
            region: { ...o.region, width: d, groupSize: d, mask: null, srcOffset: o.region.srcOffset + h * d },
          }));
          return { h, othersAt: addU(others), ops: mine };
        });
        this.results.set(first.layer, { heads, touched: t.rows, touchedAt: addU(t.rows), allAt: addU(Uint32Array.from({ length: n }, (_, i) => i)) });
      }
      this.ops.set(name, ops);
    }
    const fl = new Float32Array(Math.max(1, fAt)), ul = new Uint32Array(Math.max(1, uAt));
    let o = 0;
    for (const a of floats) { fl.set(a, o); o += a.length; }
    o = 0;
    for (const a of u32s) { ul.set(a, o); o += a.length; }
    this.data = ctx.upload(fl, 'edit sources');
    this.index = ctx.upload(ul, 'edit rows');
  }

  /** Whether this chunk edits the hook `name` (a fused kernel must then not skip it). */
  has(name: string): boolean {
    return this.ops.has(name);
  }

  /** Records the edits of a rows hook on x ([xRows, width] at x.offset). */
  apply(step: Step, name: string, x: F32Ref): void {
    const ops = this.ops.get(name);
    if (!ops) return;
    for (const o of ops) this.encode(step, x, { buffer: this.data, offset: o.srcAt }, o, this.n);
  }

  private encode(step: Step, x: F32Ref, src: F32Ref, o: Op, xRows: number): void {
    encodeEdit(this.ctx, step, x, src, { buffer: this.index, rowsAt: o.rowsAt, maskAt: o.maskAt }, o.region, xRows);
  }

  private temp(floats: number): GPUBuffer {
    const b = this.ctx.device.createBuffer({ label: 'edit scratch', size: Math.max(16, 4 * floats), usage: 0x80 | 0x4 | 0x8 });
    this.temps.push(b);
    return b;
  }

  /** attn.hook_pattern edits of layer l: pattern [n_heads, n, kLen] edited in place, z += ΔP · V. */
  pattern(step: Step, l: number, pattern: GPUBuffer, z: GPUBuffer, values: GPUBuffer): void {
    const p = this.patterns.get(l);
    if (!p) return;
    const c = this.c, n = this.n, kLen = this.start + n, area = c.nHeads * n * kLen;
    const before = this.temp(area), delta = this.temp(area);
    step.copy(pattern, 0, before, 0, 4 * area);
    for (const o of this.ops.get(`blocks.${l}.attn.hook_pattern`)!) this.encode(step, { buffer: pattern, offset: 0 }, { buffer: this.data, offset: o.srcAt }, o, c.nHeads * n);
    step.copy(pattern, 0, delta, 0, 4 * area);
    const sub: Op = { region: { rows: p.touched, width: kLen, groupSize: kLen, mask: null, mode: EDIT_ADD, beta: -1, srcOffset: 0, srcStride: kLen, srcByRow: true }, srcAt: 0, rowsAt: p.touchedAt, maskAt: -1 };
    this.encode(step, { buffer: delta, offset: 0 }, { buffer: before, offset: 0 }, sub, c.nHeads * n);
    encodePatternValues(this.ctx, step, { buffer: z, offset: 0 }, { buffer: delta, offset: 0 }, { buffer: values, offset: 0 },
      { buffer: this.index, rowsAt: p.touchedAt }, p.touched.length, { n, kLen, nHeads: c.nHeads, nKvHeads: c.nKvHeads, dHead: c.dHead });
  }

  /** attn.hook_result edits of layer l: out ([n, d_model], already z · W_Oᵀ) += Σ_h (r'_h − r_h). */
  result(step: Step, l: number, out: GPUBuffer, z: GPUBuffer, wo: GpuTensor): void {
    const r = this.results.get(l);
    if (!r) return;
    const c = this.c, n = this.n, d = c.dModel, qd = c.nHeads * c.dHead;
    const zh = this.temp(n * qd), rh = this.temp(n * d), edited = this.temp(n * d);
    const rowsOp = (mode: EditRegion['mode'], beta: number, rowsAt: number, rows: Uint32Array, width: number, groupSize: number, mask: Uint32Array | null, maskAt: number): Op => (
      { region: { rows, width, groupSize, mask, mode, beta, srcOffset: 0, srcStride: width, srcByRow: true }, srcAt: 0, rowsAt, maskAt });
    const all = Uint32Array.from({ length: n }, (_, i) => i);
    for (const { h, othersAt, ops } of r.heads) {
      step.copy(z, 0, zh, 0, 4 * n * qd);                                  // z with every other head zeroed
      this.encode(step, { buffer: zh, offset: 0 }, { buffer: this.data, offset: 0 }, rowsOp(EDIT_ZERO, 0, r.allAt, all, qd, c.dHead, new Uint32Array(c.nHeads), othersAt), n);
      encodeMatmul(this.ctx, step, { buffer: rh, offset: 0 }, { buffer: zh, offset: 0 }, wo, n);   // r_h  [n, d_model]
      step.copy(rh, 0, edited, 0, 4 * n * d);
      for (const o of ops) this.encode(step, { buffer: edited, offset: 0 }, { buffer: this.data, offset: o.srcAt }, o, n);   // r'_h
      this.encode(step, { buffer: edited, offset: 0 }, { buffer: rh, offset: 0 }, rowsOp(EDIT_ADD, -1, r.touchedAt, r.touched, d, d, null, -1), n);
      this.encode(step, { buffer: out, offset: 0 }, { buffer: edited, offset: 0 }, rowsOp(EDIT_ADD, 1, r.touchedAt, r.touched, d, d, null, -1), n);
    }
  }

  /** Frees the uploads and scratch (after the step was submitted and done). */
  destroy(): void {
    for (const b of [this.data, this.index, ...this.temps]) b.destroy();
  }
}
