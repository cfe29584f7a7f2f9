// Search (issue 13: GET /api/chat/search) and export (issue 10:
// GET /api/chat/sessions/{id}/export, GET /api/chat/export) in the web app.
// These need the service to offer those endpoints: tests/it/browser.rs runs
// this file once they are in the route table (see BROWSER_TEST_FILES there).

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';

import { APP, call, launch, newPage, newUser, openApp, ready, seedSession } from './lib.mjs';

let browser;
before(async () => {
  const { body: doc } = await call('GET', '/api/openapi.json');
  for (const path of ['/api/chat/search', '/api/chat/sessions/{session_id}/export', '/api/chat/export']) {
    assert.ok(doc.paths[path]?.get, `the service does not offer GET ${path}`);
  }
  browser = await launch();
});
after(async () => { await browser?.close(); });

const button = (page, name) => page.getByRole('button', { name, exact: true });
const filler = (i) => ['user', `filler message number ${i}`];

/** A user with a long Lisbon chat (the hit is old: on the third page) and a short one. */
async function seed() {
  const user = newUser();
  const messages = Array.from({ length: 130 }, (_, i) => filler(i));
  messages[2] = ['assistant', 'The tram to Belém leaves from Praça da Figueira.'];
  const lisbon = await seedSession(user, { name: 'Trip to Lisbon', messages });
  const kube = await seedSession(user, { name: 'Kubernetes questions', messages: [['user', 'how do I undo a rollout?']] });
  return { user, lisbon, kube };
}

describe('search in the web app', () => {
  test('typing finds a message; the hit opens the chat at it, scrolled to and highlighted', async (t) => {
    const page = await newPage(browser, t);
    const { user, lisbon } = await seed();
    await openApp(page, user);
    await page.getByRole('searchbox', { name: 'Search' }).fill('belém TRAM');
    const results = page.locator('#results-list a');
    await results.first().waitFor();
    assert.equal(await results.count(), 1);
    const hit = results.first();
    assert.match(await hit.textContent(), /Trip to Lisbon/);
    assert.match(await hit.locator('.snippet').textContent(), /tram to Belém/);
    assert.deepEqual(await hit.locator('mark').allTextContents(), ['tram', 'Belém']);
    await hit.click();
    await page.waitForURL(new RegExp(`/api/ui/sessions/${lisbon.id}\\?message=`));
    const shown = page.locator('#messages .message.hit');
    await shown.waitFor();
    assert.equal(await shown.locator('.content').textContent(), 'The tram to Belém leaves from Praça da Figueira.');
    const box = await shown.boundingBox();
    const scroller = await page.locator('#scroller').boundingBox();
    assert.ok(box.y >= scroller.y && box.y + box.height <= scroller.y + scroller.height, 'on screen');
    // The link is a deep link: reloading lands on the same message.
    await page.reload();
    await ready(page);
    await page.locator('#messages .message.hit', { hasText: 'tram to Belém' }).waitFor();
  });

  test('a session name is a hit; Clear search returns to the list', async (t) => {
    const page = await newPage(browser, t);
    const { user, kube } = await seed();
    await openApp(page, user);
    const box = page.getByRole('searchbox', { name: 'Search' });
    await box.fill('kubern');
    await box.press('Enter');
    const hit = page.locator('#results-list a', { hasText: 'Kubernetes questions' });
    await hit.waitFor();
    await hit.click();
    await page.waitForURL(new RegExp(`/api/ui/sessions/${kube.id}`));
    await page.getByRole('heading', { name: 'Kubernetes questions' }).waitFor();
    await button(page, 'Clear search').click();
    assert.equal(await box.inputValue(), '');
    await page.locator('#sessions a', { hasText: 'Trip to Lisbon' }).waitFor();
  });

  test('nothing found says so, and markup in what is found stays text', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    await seedSession(user, { name: 'markup', messages: [['user', 'look <img src=x onerror="window.__pwned=1"> here']] });
    await openApp(page, user);
    const box = page.getByRole('searchbox', { name: 'Search' });
    await box.fill('zebra-unicorn');
    await page.locator('#results-empty').waitFor();
    await box.fill('look here');
    const hit = page.locator('#results-list a').first();
    await hit.waitFor();
    assert.match(await hit.locator('.snippet').textContent(), /<img src=x onerror="window.__pwned=1">/);
    assert.equal(await page.locator('#results img').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
  });
});

describe('export in the web app', () => {
  async function download(page, what, format) {
    await button(page, 'Export').click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('radio', { name: what }).check();
    if (format) await dialog.getByLabel('Format').selectOption(format);
    const [file] = await Promise.all([page.waitForEvent('download'), dialog.getByRole('button', { name: 'Download' }).click()]);
    return { name: file.suggestedFilename(), text: await readFile(await file.path(), 'utf8') };
  }

  test('the open chat as Markdown, JSON and NDJSON', async (t) => {
    const page = await newPage(browser, t);
    const { user, lisbon } = await seed();
    await openApp(page, user, `sessions/${lisbon.id}`);
    const markdown = await download(page, 'This chat', 'markdown');
    assert.match(markdown.name, /\.md$/);
    assert.match(markdown.text, /^# Trip to Lisbon/m);
    assert.match(markdown.text, /The tram to Belém leaves from Praça da Figueira\./);
    const json = await download(page, 'This chat', 'json');
    const session = JSON.parse(json.text);
    assert.equal(session.id, lisbon.id);
    assert.equal(session.messages.length, 130);
    const ndjson = await download(page, 'This chat', 'ndjson');
    const lines = ndjson.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 131);
  });

  test('everything of the user as NDJSON', async (t) => {
    const page = await newPage(browser, t);
    const { user, lisbon, kube } = await seed();
    await openApp(page, user);
    const all = await download(page, /All chats/);
    const lines = all.text.trim().split('\n').map((l) => JSON.parse(l));
    const sessions = lines.filter((l) => l.type === 'session').map((l) => l.id).sort();
    assert.deepEqual(sessions, [lisbon.id, kube.id].sort());
    assert.equal(lines.filter((l) => l.type === 'message').length, 131);
  });
});
