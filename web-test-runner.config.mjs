// Browser tests: headless Chromium with WebGPU on (SwiftShader on machines without a GPU).
import { esbuildPlugin } from '@web/dev-server-esbuild';
import { chromeLauncher } from '@web/test-runner-chrome';
import { koaLocalModels, ISOLATION_HEADERS } from './src/app/local-models.mjs';
import { countingReporter } from './test/support/wtr-counts.mjs';
import { koaFaultServer } from './test/support/fault-server.mjs';
import { defaultReporter } from '@web/test-runner';

const executablePath = process.env.CHROME_PATH ?? '/usr/bin/chromium';

export default {
  files: ['test/browser/**/*.test.ts', 'kernels/**/*.test.ts', 'cells/**/*.test.ts'],
  nodeResolve: true,
  concurrency: 1,
  concurrentBrowsers: 1,
  browserStartTimeout: 60000,
  testsStartTimeout: 120000,
  testsFinishTimeout: 600000,
  testFramework: { config: { timeout: 60000 } },
  plugins: [esbuildPlugin({ ts: true, target: 'es2022', tsconfig: 'tsconfig.json' })],
  middleware: [
    async (ctx, next) => { ctx.set(ISOLATION_HEADERS); await next(); },
    koaLocalModels(),
    koaFaultServer(),   // /test-files/: the loading tests' misbehaving server
  ],
  browsers: [
    chromeLauncher({
      launchOptions: {
        executablePath,
        headless: true,
        args: [
          '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan',
          '--disable-quic', '--no-first-run', '--disable-background-networking',
          '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
        ],
      },
    }),
  ],
  reporters: [defaultReporter(), countingReporter()],
};
