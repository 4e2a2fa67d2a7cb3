// The engine worker for the fault-injection tests (test/browser/app-faults.test.ts): the real one
// (src/worker/worker.ts), plus a BroadcastChannel on which a test destroys every WebGPU device
// this worker acquired, as a driver reset or a GPU process crash would. Not shipped in the app.
import '../../src/worker/worker.ts';

export const FAULT_CHANNEL = 'glassbox-test-faults';

const devices: GPUDevice[] = [];
const adapter = (globalThis as { GPUAdapter?: { prototype: GPUAdapter } }).GPUAdapter?.prototype;
if (adapter) {
  const request = adapter.requestDevice;
  adapter.requestDevice = async function (this: GPUAdapter, desc?: GPUDeviceDescriptor) {
    const d = await request.call(this, desc);
    devices.push(d);
    return d;
  };
}

const channel = new BroadcastChannel(FAULT_CHANNEL);
channel.onmessage = (e: MessageEvent) => {
  if (e.data !== 'lose-device') return;
  for (const d of devices) d.destroy();
  channel.postMessage({ destroyed: devices.length });
};
