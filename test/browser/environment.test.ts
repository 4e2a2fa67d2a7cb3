// What the browser gives the engine: these facts decide the backend and the threading model.
import { expect } from 'chai';

describe('browser environment', () => {
  it('is cross-origin isolated, so SharedArrayBuffer can be shared with workers', () => {
    expect(globalThis.crossOriginIsolated).to.equal(true);
    expect(typeof SharedArrayBuffer).to.equal('function');
  });

  it('serves the shared test models under /models/local/ with range requests', async () => {
    const res = await fetch('/models/local/tinystories-260k/stories260K.gguf', { headers: { Range: 'bytes=0-3' } });
    expect(res.status).to.equal(206);
    const magic = new TextDecoder().decode(await res.arrayBuffer());
    expect(magic).to.equal('GGUF');
  });

  it('reports whether a WebGPU adapter exists', async function (this: Mocha.Context) {
    const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
    if (!adapter) {
      console.warn('SKIPPED: no WebGPU adapter in this browser');
      this.skip();
    }
    expect(adapter!.limits.maxStorageBufferBindingSize).to.be.greaterThan(0);
  });
});
