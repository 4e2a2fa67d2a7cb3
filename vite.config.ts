// `npm start` serves the app on http://localhost:5173 (PORT overrides), with ../shared/models under
// /models/local/ when it exists, and the cross-origin isolation headers that threads need.
import { defineConfig } from 'vite';
// @ts-expect-error plain ESM module without types, shared with web-test-runner.config.mjs
import { connectLocalModels, ISOLATION_HEADERS } from './src/app/local-models.mjs';

const port = Number(process.env.PORT ?? 5173);

export default defineConfig({
  server: { port, strictPort: true, headers: ISOLATION_HEADERS },
  preview: { port, strictPort: true, headers: ISOLATION_HEADERS },
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist', sourcemap: true },
  plugins: [
    {
      name: 'glassbox-local-models',
      configureServer(server) { server.middlewares.use(connectLocalModels()); },
      configurePreviewServer(server) { server.middlewares.use(connectLocalModels()); },
    },
  ],
});
