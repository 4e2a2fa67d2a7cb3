// Types of built-app.mjs for the TypeScript benchmark (test/bench/app.ts).
import type { Browser, Page } from 'puppeteer-core';

export const root: string;
export function serveBuiltApp(o?: { outDir?: string; skipBuild?: boolean }): Promise<{ origin: string; close(): Promise<void> }>;
export function launchBrowser(o?: { webgpu?: boolean }): Promise<Browser>;
export const PAGE_HELPERS: string;
export const ALL_DRAWN: string;
export function openPage(context: import('puppeteer-core').BrowserContext, origin: string, query: string, o?: { scheme?: string; height?: number }): Promise<Page & { errors: string[] }>;
export function waitFor(page: Page, fn: (...args: any[]) => unknown, what: string, timeout?: number, ...args: unknown[]): Promise<unknown>;

/** What PAGE_HELPERS puts on window (page functions reach the app through it). */
declare global {
  interface Window {
    __gb: {
      app(): any;
      cell(kind: string, n?: number): any;
      tokens(): number[];
      modelDrawn(): boolean;
    };
  }
}
