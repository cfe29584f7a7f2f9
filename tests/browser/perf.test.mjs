// Figures, not pass/fail on time (a shared machine's timings vary): a cold
// load of the app to its first chat list painted, opening a 300-message
// chat to its newest message on screen, and the bytes of the app's
// JavaScript and CSS as served compressed. It does check what is not a
// timing: a returning visitor fetches nothing of the app but the start
// page, and the files come compressed.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { APP, launch, newPage, newUser, openApp, seedSession } from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test('figures: cold load, opening a long chat, compressed size; a returning visitor downloads only the start page', async (t) => {
  const user = newUser('perf');
  for (let i = 0; i < 29; i++) await seedSession(user, { name: `chat ${i + 1}`, messages: [['user', `hello ${i}`]] });
  const long = await seedSession(user, {
    name: 'Long chat',
    messages: Array.from({ length: 300 }, (_, i) => [i % 2 ? 'assistant' : 'user', i % 2
      ? `Answer ${i}: **bold**, a list:\n\n- one\n- two\n\n\`\`\`js\nconsole.log(${i});\n\`\`\``
      : `Question ${i}?`]),
  });

  const loads = [];
  const opens = [];
  for (let run = 0; run < 5; run++) {
    // A new context each time: an empty cache, a cold load.
    const page = await newPage(browser, t);
    await page.addInitScript(() => {
      new MutationObserver((_, observer) => {
        if (document.querySelector('#sessions a')) {
          observer.disconnect();
          requestAnimationFrame(() => { window.__listPainted = performance.now(); });
        }
      }).observe(document, { childList: true, subtree: true });
    });
    await openApp(page, user);
    await page.waitForFunction(() => window.__listPainted);
    loads.push(await page.evaluate(() => window.__listPainted));

    const link = page.getByRole('link', { name: /Long chat/ });
    await link.waitFor();
    opens.push(await page.evaluate(() => new Promise((resolve) => {
      const start = performance.now();
      const target = [...document.querySelectorAll('#sessions a')].find((a) => a.textContent.includes('Long chat'));
      target.click();
      const check = () => {
        const last = document.querySelector('#messages .message:last-child:not(.skeleton)');
        const scroller = document.getElementById('scroller').getBoundingClientRect();
        if (last && last.textContent.includes('Answer 299')) {
          const box = last.getBoundingClientRect();
          if (box.bottom <= scroller.bottom + 1 && box.top >= scroller.top - 1) {
            requestAnimationFrame(() => resolve(performance.now() - start));
            return;
          }
        }
        requestAnimationFrame(check);
      };
      check();
    })));
    await page.context().close();
  }

  // The app's files as a browser gets them: start page, then what it names.
  const page = await newPage(browser, t);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const fetched = new Map();
  const fromCache = new Set();
  cdp.on('Network.responseReceived', (e) => {
    if (new URL(e.response.url).pathname.startsWith('/api/ui/')) fetched.set(e.requestId, { url: e.response.url, encoding: e.response.headers['content-encoding'] ?? e.response.headers['Content-Encoding'], status: e.response.status, bytes: 0 });
  });
  cdp.on('Network.requestServedFromCache', (e) => fromCache.add(e.requestId));
  cdp.on('Network.loadingFinished', (e) => { if (fetched.has(e.requestId)) fetched.get(e.requestId).bytes = e.encodedDataLength; });
  await openApp(page, user);
  await page.waitForTimeout(200);
  const first = [...fetched.values()];
  const assets = first.filter((f) => /\.(js|css)\?v=/.test(f.url));
  assert.ok(assets.length >= 5, `the app's files: ${first.map((f) => f.url).join(', ')}`);
  for (const f of assets) assert.equal(f.encoding, 'br', `${f.url} is compressed`);
  const bytes = assets.reduce((sum, f) => sum + f.bytes, 0);

  // Back again: only the start page goes over the network.
  fetched.clear();
  await page.goto(`${APP}/api/ui/sessions/${long.id}`);
  await page.locator('#messages .message').last().waitFor();
  await page.waitForTimeout(200);
  // The icon is left out: Chromium loads favicons by its own rules, outside the page's cache.
  const again = [...fetched.entries()].filter(([id]) => !fromCache.has(id)).map(([, f]) => new URL(f.url).pathname)
    .filter((p) => p !== '/api/ui/icon.svg');
  assert.deepEqual(again, [`/api/ui/sessions/${long.id}`], 'a returning visitor fetches only the start page');

  console.log([
    '',
    'web app figures (median of 5 cold loads; the server is a debug build under cargo test):',
    `  cold load to the first chat list painted: ${median(loads).toFixed(0)} ms (runs: ${loads.map((x) => x.toFixed(0)).join(', ')})`,
    `  opening a 300-message chat to its newest message on screen: ${median(opens).toFixed(0)} ms (runs: ${opens.map((x) => x.toFixed(0)).join(', ')})`,
    `  JavaScript and CSS as served (Brotli, headers included): ${(bytes / 1024).toFixed(1)} KB in ${assets.length} files`,
    ...assets.map((f) => `    ${new URL(f.url).pathname}: ${(f.bytes / 1024).toFixed(1)} KB`),
    '',
  ].join('\n'));
  await openApp(page, user);
});
