// `npm start` serves the app on http://localhost:5173 (PORT overrides), with ../shared/models under
// /models/local/ when it exists, the cross-origin isolation headers that threads need and the
// content security policy (SITE_HEADERS; index.html carries the same policy as a <meta> for static
// hosts that send no headers).
import { defineConfig } from 'vite';
// @ts-expect-error plain ESM module without types, shared with web-test-runner.config.mjs
import { connectLocalModels, SITE_HEADERS } from './src/app/local-models.mjs';

const port = Number(process.env.PORT ?? 5173);

export default defineConfig({
  server: { port, strictPort: true, headers: SITE_HEADERS },
  preview: { port, strictPort: true, headers: SITE_HEADERS },
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
