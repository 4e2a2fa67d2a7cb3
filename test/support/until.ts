// Waiting in browser tests: polls `f` every 40 ms until it returns something truthy, which it
// returns; past `ms` it throws naming what it waited for.

export async function until<T>(f: () => T | null | undefined | false, what: string, ms = 60000): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    const v = f();
    if (v) return v;
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 40));
  }
}
