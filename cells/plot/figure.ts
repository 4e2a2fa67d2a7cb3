// A cell's figure and its data, and turning them into files: SVG, PNG (drawn from the SVG), CSV
// and JSON, named after the notebook, the cell and the model so that a folder of exports reads
// like a table of contents.

/** What a cell can export: its figure as SVG text and its data as rows of one table. */
export interface FigureExport {
  svg: string;
  /** Rows with the same keys; CSV columns follow the first row's key order. */
  rows: readonly Record<string, string | number | boolean | null>[];
  /** Extra fields for the JSON file (shapes, the trace's request id, settings). */
  meta?: Record<string, unknown>;
}

/** A file-name part: lowercase words joined by hyphens, nothing a file system dislikes. */
export function slug(s: string): string {
  const out = s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  return out.slice(0, 48) || 'untitled';
}

/** "notebook-title.cell-name.model.svg" */
export function exportName(parts: { notebook: string; cell: string; model: string }, ext: string): string {
  return `${slug(parts.notebook)}.${slug(parts.cell)}.${slug(parts.model)}.${ext}`;
}

function csvField(v: string | number | boolean | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 CSV (CRLF line ends, quoted where needed). */
export function toCsv(rows: FigureExport['rows']): string {
  if (!rows.length) return '';
  const cols = Object.keys(rows[0]!);
  const lines = [cols.map(csvField).join(',')];
  for (const r of rows) lines.push(cols.map((c) => csvField(r[c] ?? null)).join(','));
  return lines.join('\r\n') + '\r\n';
}

export function toJson(f: FigureExport): string {
  return JSON.stringify({ ...(f.meta ?? {}), rows: f.rows }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 1);
}

/** A standalone SVG file: namespace, a white background and dark text (no page CSS around it). */
export function standaloneSvg(svg: string): string {
  let s = svg.includes('xmlns=') ? svg : svg.replace('<svg', '<svg xmlns="http://www.w3.org/2000/svg"');
  s = s.replace(/<svg([^>]*)>/, (_m, a: string) => `<svg${a} style="background:#fff;color:#1d1d1f">`);
  return `<?xml version="1.0" encoding="UTF-8"?>\n${s}`;
}

/** Draws an SVG onto a canvas at `scale` and returns a PNG blob (browser only). */
export async function svgToPng(svg: string, scale = 2): Promise<Blob> {
  const text = standaloneSvg(svg);
  const m = /<svg[^>]*\bwidth="([\d.]+)"[^>]*\bheight="([\d.]+)"/.exec(text) ?? /<svg[^>]*\bheight="([\d.]+)"[^>]*\bwidth="([\d.]+)"/.exec(text);
  const vb = /viewBox="[\d.-]+ [\d.-]+ ([\d.]+) ([\d.]+)"/.exec(text);
  const w = Number(vb?.[1] ?? m?.[1] ?? 640), h = Number(vb?.[2] ?? m?.[2] ?? 400);
  const url = URL.createObjectURL(new Blob([text], { type: 'image/svg+xml' }));
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(w * scale));
    canvas.height = Math.max(1, Math.round(h * scale));
    const ctx = canvas.getContext('2d')!;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    return await new Promise<Blob>((ok, fail) => canvas.toBlob((b) => (b ? ok(b) : fail(new Error('the browser could not encode the PNG'))), 'image/png'));
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** The four files of a figure (browser: PNG needs a canvas). */
export async function exportFiles(f: FigureExport, names: { notebook: string; cell: string; model: string }): Promise<{ name: string; blob: Blob }[]> {
  return [
    { name: exportName(names, 'svg'), blob: new Blob([standaloneSvg(f.svg)], { type: 'image/svg+xml' }) },
    { name: exportName(names, 'png'), blob: await svgToPng(f.svg) },
    { name: exportName(names, 'csv'), blob: new Blob([toCsv(f.rows)], { type: 'text/csv' }) },
    { name: exportName(names, 'json'), blob: new Blob([toJson(f)], { type: 'application/json' }) },
  ];
}

/** Starts a download of one file. */
export function download(name: string, blob: Blob): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
