// Allocation guard: while an input runs, every `new ArrayBuffer(n)`, typed array, `new Array(n)`
// and WebAssembly.Memory larger than the cap is refused and recorded. A loader that allocates from
// a declared length before checking it against the file's size hits the cap (on a small input)
// long before the machine runs out of memory, and the fuzzer reports it. Violations are recorded
// as well as thrown, because loaders may wrap the error they catch into a named one.

const TYPED = ['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array'] as const;

let cap = Infinity;
export const violations: string[] = [];

export class AllocationGuardError extends Error {
  override name = 'AllocationGuardError';
}

function refuse(what: string, bytes: number): never {
  const msg = `${what} of ${bytes} bytes exceeds the cap of ${cap} bytes for this input`;
  violations.push(msg);
  throw new AllocationGuardError(msg);
}

function bytesOf(args: unknown[], elementBytes: number): number {
  const a = args[0];
  if (typeof a === 'number') return a * elementBytes;
  if (typeof a === 'object' && a !== null && !ArrayBuffer.isView(a) && !(a instanceof ArrayBuffer) && 'length' in a) {
    const n = (a as { length: unknown }).length;
    return typeof n === 'number' ? n * elementBytes : 0;
  }
  return 0;
}

let installed = false;
/** Replaces the global constructors by checked ones (once per thread). */
export function installGuard(): void {
  if (installed) return;
  installed = true;
  const g = globalThis as Record<string, unknown>;
  const wrap = (name: string, size: (args: unknown[]) => number) => {
    const Orig = g[name] as new (...a: unknown[]) => object;
    g[name] = new Proxy(Orig, {
      construct(target, args, newTarget) {
        const n = size(args);
        if (n > cap) refuse(`new ${name}`, n);
        return Reflect.construct(target, args, newTarget === g[name] ? target : newTarget);
      },
      apply(target, thisArg, args) {
        const n = size(args);
        if (n > cap) refuse(name, n);
        return Reflect.apply(target as unknown as (...a: unknown[]) => unknown, thisArg, args);
      },
    });
  };
  wrap('ArrayBuffer', (a) => (typeof a[0] === 'number' ? a[0] : 0));
  for (const t of TYPED) wrap(t, (a) => bytesOf(a, (g[t] as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT));
  wrap('Array', (a) => (a.length === 1 && typeof a[0] === 'number' ? a[0] * 8 : 0));
  const wasm = WebAssembly as unknown as Record<string, unknown>;
  const Mem = wasm['Memory'] as new (d: WebAssembly.MemoryDescriptor) => WebAssembly.Memory;
  wasm['Memory'] = new Proxy(Mem, {
    construct(target, args, newTarget) {
      const n = ((args[0] as WebAssembly.MemoryDescriptor | undefined)?.initial ?? 0) * 65536;
      if (n > cap) refuse('new WebAssembly.Memory', n);
      return Reflect.construct(target, args, newTarget === wasm['Memory'] ? target : newTarget);
    },
  });
}

/** Sets the cap for the input about to run (Infinity between inputs). */
export function setCap(bytes: number): void {
  cap = bytes;
  violations.length = 0;
}
