// Why: the live page is JavaScript in a browser; only a real browser shows that it streams, draws and logs no error.
// Usage: node scripts/test-dashboard.cjs <bitcoin-api base URL> [screenshot.png]
// Loads <base>/dashboard in headless Chromium and checks, each within a deadline: the first
// pair's price changes at least twice from its stream (new event ids), every pair shows a price,
// the candle chart has drawn candles, switching the interval draws the other interval, the
// quotes table lists the exchanges; and the console has no error and the page threw none.
'use strict';
const path = require('node:path');
const { chromium } = require(path.join(__dirname, '..', '.tools', 'browser', 'node_modules', 'playwright-core'));

const [base, screenshot] = process.argv.slice(2);
const DEADLINE_MS = 60_000;

async function main() {
  if (!base) throw new Error('usage: test-dashboard.cjs <base URL> [screenshot.png]');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // No sandbox as root (CI); nothing of Chromium's own reaches for the network, which is closed.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (message) => { if (message.type() === 'error') problems.push(`console: ${message.text()}`); });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => {
      // A stream the page closes on unload is not a failure.
      if (!request.url().endsWith('/stream')) problems.push(`request failed: ${request.url()} ${request.failure().errorText}`);
    });
    const response = await page.goto(`${base}/dashboard`);
    if (response.status() !== 200) throw new Error(`/dashboard answered ${response.status()}`);

    const first = page.locator('.card').first();
    const price = first.locator('[data-role=price]');
    const seen = [];
    await until('the first pair\'s price changed twice from its stream', async () => {
      const now = { price: await price.getAttribute('data-price'), id: await price.getAttribute('data-sequence') };
      const last = seen[seen.length - 1];
      if (now.price && now.id && (!last || (last.price !== now.price && last.id !== now.id))) seen.push(now);
      return seen.length >= 3;
    });
    console.log(`dashboard: ${await first.getAttribute('data-pair')} price ${seen.map((s) => `${s.price} (id ${s.id})`).join(' -> ')}`);

    await until('every pair shows a price', async () =>
      page.$$eval('.card [data-role=price]', (prices) => prices.length > 0 && prices.every((p) => p.dataset.price)));
    await until('the quotes table lists the exchanges', async () => (await page.locator('#quotes tbody tr').count()) >= 2);
    const drawn = async (interval) => page.$eval('#chart', (canvas, interval) => {
      if (canvas.dataset.interval !== interval || Number(canvas.dataset.candles) < 1) return 0;
      // Candle pixels: teal (rising) or red (falling), however faded (the open candle is); not
      // the grey grid and labels, the blue average line or the amber last-price line.
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      let candle = 0;
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
        if (Math.abs(g - b) < 30 && Math.abs(g - r) > 50) candle++;
      }
      return candle;
    }, interval);
    await until('the 1m candle chart has drawn', async () => (await drawn('1m')) > 20);
    await page.click('.intervals button[data-interval="5m"]');
    await until('the 5m candle chart has drawn', async () => (await drawn('5m')) > 20);
    console.log(`dashboard: candles drawn (1m, then 5m), ${await page.locator('#quotes tbody tr').count()} exchanges listed`);
    if (screenshot) {
      await page.click('.intervals button[data-interval="1m"]');
      await until('the 1m candle chart has drawn again', async () => (await drawn('1m')) > 20);
      await page.screenshot({ path: screenshot });
      console.log(`dashboard: screenshot in ${screenshot}`);
    }
    if (problems.length) throw new Error(`the page reported problems:\n${[...new Set(problems)].join('\n')}`);
  } finally {
    await browser.close();
  }
}

async function until(what, check) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`not within ${DEADLINE_MS / 1000} s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

main().catch((error) => {
  console.error(`FAIL dashboard: ${error.message}`);
  process.exit(1);
});
