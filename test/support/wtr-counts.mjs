// A web-test-runner reporter that writes the pass/fail/skip counts of every test to a JSON file, so
// that test/run.mjs can print one summary line for the Node and the browser tests together.
import { writeFileSync } from 'node:fs';

function count(suite, acc, path = '') {
  if (!suite) return acc;
  const here = `${path} ${suite.name ?? ''}`;
  for (const t of suite.tests ?? []) {
    if (t.skipped) {
      acc.skipped++;
      // WebGPU tests say so in their title (test/support/gpu.ts); CI must not let them skip
      if (`${here} ${t.name ?? ''}`.includes('[webgpu]')) acc.webgpuSkipped++;
    } else if (t.passed) acc.passed++;
    else acc.failed++;
  }
  for (const s of suite.suites ?? []) count(s, acc, here);
  return acc;
}

export function countingReporter(out = process.env.GLASSBOX_WTR_COUNTS) {
  return {
    onTestRunFinished({ sessions }) {
      const acc = { passed: 0, failed: 0, skipped: 0, fileErrors: 0, webgpuSkipped: 0 };
      for (const s of sessions) {
        count(s.testResults, acc);
        if (!s.passed && (s.errors?.length ?? 0) > 0) acc.fileErrors++;
      }
      if (out) writeFileSync(out, JSON.stringify(acc));
    },
  };
}
