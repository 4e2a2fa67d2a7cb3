// WGSL sources live in .wgsl files beside their CPU twins (kernels/<op>/<op>.wgsl). They are
// located with `new URL('./op.wgsl', import.meta.url)`, which Vite bundles as an asset, the test
// server serves as a file, and Node reads from disk — one source of truth for every environment.

const cache = new Map<string, Promise<string>>();

export function loadShaderSource(url: URL): Promise<string> {
  const key = url.href;
  let p = cache.get(key);
  if (!p) {
    p = (async () => {
      if (url.protocol === 'file:') {
        const { readFile } = await import(/* @vite-ignore */ 'node:fs/promises');
        return readFile(url, 'utf8');
      }
      const res = await fetch(url);
      if (!res.ok) throw new Error(`shader ${url.pathname}: ${res.status} ${res.statusText}`);
      return res.text();
    })();
    cache.set(key, p);
  }
  return p;
}

/** Loads several sources and joins them: shared WGSL helpers first, then the kernel. */
export async function loadShader(...urls: URL[]): Promise<string> {
  return (await Promise.all(urls.map(loadShaderSource))).join('\n');
}
