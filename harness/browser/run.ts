/**
 * `npm run bench -- --browser`: serve the bench page (serve.ts) and run it in Debian's Chromium
 * (/usr/bin/chromium, `apt-get install -y chromium`) driven by playwright-core — no downloaded
 * browser. Returns the page's report (the same shape `npm run bench -- --json` prints).
 */
import { startBenchServer } from './serve.js';
import type { BenchReport } from '../bench.js';
import type { WorkloadKey } from '../bench/common.js';

export interface BrowserBenchOptions {
  quick?: boolean;
  tiny?: boolean;
  runs?: number;
  only?: WorkloadKey[];
  noV86?: boolean;
  log?: (s: string) => void;
  /** give up after this many ms (default 30 min) */
  timeoutMs?: number;
  executablePath?: string;
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  // a hidden/headless tab must not be throttled while the worker runs
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding'];

export async function launchChromium(executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium') {
  const name = 'playwright-core';
  const { chromium } = await import(/* non-literal: stays external in the CLI bundle */ name);
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}

export async function runBrowserBench(o: BrowserBenchOptions = {}): Promise<BenchReport> {
  const log = o.log ?? (() => {});
  const server = await startBenchServer();
  let browser;
  try {
    browser = await launchChromium(o.executablePath);
    const page = await browser.newPage();
    page.on('console', (m: { text(): string }) => { const t = m.text(); if (t.startsWith('bench: ')) log(`chromium ${t.slice(7)}`); });
    page.on('pageerror', (e: Error) => log(`chromium page error: ${e.message}`));
    const q = new URLSearchParams({ size: o.tiny ? 'tiny' : o.quick ? 'quick' : 'full', runs: String(o.runs ?? 3) });
    if (o.only) q.set('only', o.only.join(','));
    if (o.noV86) q.set('nov86', '1');
    log(`chromium ${browser.version()}: ${server.url}?${q}`);
    await page.goto(`${server.url}?${q}`);
    const timeout = new Promise((_, rej) => setTimeout(() => rej(new Error('browser bench timed out')), o.timeoutMs ?? 30 * 60_000).unref());
    const res = await Promise.race([server.result, timeout]) as BenchReport & { error?: string };
    if (res.error) throw new Error(`browser bench failed: ${res.error}`);
    return res;
  } finally {
    await browser?.close().catch(() => {});
    await server.close();
  }
}
