// The web app as a chat UI people keep using (issue 26): Markdown, drafts,
// fresh views, errors, loading, right-to-left text, focus, search's rules,
// archived chats, import and erase. Each test drives Chromium through the
// controls' accessible names against the real binary.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { APP, EASYAUTH, call, launch, newPage, newUser, openApp, ready, seedSession, shownMessages } from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const button = (page, name) => page.getByRole('button', { name, exact: true });
const messageBox = (page) => page.getByLabel('Message', { exact: true });
const FIXTURE = fileURLToPath(new URL('../fixtures/chatgpt/conversations.json', import.meta.url));

/** What a tab that becomes visible again is told. */
const becomeVisible = (page) => page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));

const MARKDOWN = [
  'Here is **bold**, *emphasis*, ~~struck~~ and `inline code`.',
  '',
  '1. first',
  '2. second',
  '',
  '- [x] done task',
  '- [ ] open task',
  '',
  '| Name | Count |',
  '|------|------:|',
  '| apples | 3 |',
  '',
  '```python',
  'print("hi < there")',
  '```',
  '',
  'See https://example.org/docs or [the site](https://example.org/ "Example").',
].join('\n');

describe('Markdown in messages', () => {
  test('is rendered: emphasis, lists, task lists, tables, code blocks, links; copy buttons copy', async (t) => {
    const page = await newPage(browser, t, { contextOptions: { permissions: ['clipboard-read', 'clipboard-write'] } });
    const user = newUser();
    const session = await seedSession(user, { name: 'Markdown', messages: [['assistant', MARKDOWN]] });
    await openApp(page, user, `sessions/${session.id}`);
    const content = page.locator('#messages .message .content').first();
    await content.locator('table').waitFor();
    assert.equal(await content.locator('strong').textContent(), 'bold');
    assert.equal(await content.locator('em').textContent(), 'emphasis');
    assert.equal(await content.locator('del').textContent(), 'struck');
    assert.equal(await content.locator(':not(pre) > code').textContent(), 'inline code');
    assert.deepEqual(await content.locator('ol > li').allTextContents(), ['first', 'second']);
    assert.deepEqual(await content.locator('.task-box').evaluateAll((els) => els.map((e) => e.getAttribute('aria-label'))), ['done', 'not done']);
    assert.deepEqual(await content.locator('th').allTextContents(), ['Name', 'Count']);
    assert.deepEqual(await content.locator('td').allTextContents(), ['apples', '3']);
    const code = content.locator('.code-block pre code');
    assert.equal(await code.textContent(), 'print("hi < there")');
    assert.equal(await code.getAttribute('class'), 'language-python');
    // In a monospace font, unlike the text around it.
    const fonts = await page.evaluate(() => [document.querySelector('.code-block code'), document.querySelector('.content p')].map((e) => getComputedStyle(e).fontFamily));
    assert.match(fonts[0], /mono/i);
    assert.doesNotMatch(fonts[1], /mono/i);
    const links = content.locator('a');
    assert.deepEqual(await links.evaluateAll((as) => as.map((a) => [a.textContent, a.getAttribute('href'), a.rel, a.target])), [
      ['https://example.org/docs', 'https://example.org/docs', 'noopener noreferrer nofollow', '_blank'],
      ['the site', 'https://example.org/', 'noopener noreferrer nofollow', '_blank'],
    ]);

    await content.getByRole('button', { name: 'Copy code' }).click();
    await content.getByRole('button', { name: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'print("hi < there")');
    await page.locator('#messages .message').first().getByRole('button', { name: 'Copy message' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), MARKDOWN, 'the message as written');
  });

  test('HTML, javascript: and data: links and images stay inert; images are not fetched', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const tracker = 'http://127.0.0.1:9/pixel.png';
    const evil = [
      '<div onclick="window.__pwned=1">block <b>html</b></div>',
      '',
      'inline <img src=x onerror="window.__pwned=2"> and <a href="javascript:window.__pwned=3">a</a>',
      '',
      '[js link](javascript:window.__pwned=4) [data link](data:text/html,<script>window.__pwned=5</script>) <javascript:window.__pwned=6>',
      '',
      `![tracking pixel](${tracker}) ![](javascript:window.__pwned=7)`,
      '',
      '<script>window.__pwned=8</script>',
      '',
      '[mail](mailto:someone@example.org)',
    ].join('\n');
    const requested = [];
    page.on('request', (r) => { if (!r.url().startsWith(APP)) requested.push(r.url()); });
    const session = await seedSession(user, { name: 'Evil', messages: [['assistant', evil]] });
    await openApp(page, user, `sessions/${session.id}`);
    const content = page.locator('#messages .content').first();
    await content.getByText('tracking pixel').waitFor();
    const text = await content.innerText();
    for (const written of ['<div onclick="window.__pwned=1">', '<img src=x onerror="window.__pwned=2">', '<a href="javascript:window.__pwned=3">', '<script>window.__pwned=8</script>']) {
      assert.ok(text.includes(written), `${written} is shown as text: ${text}`);
    }
    assert.equal(await page.locator('main img, main script, main iframe, main b, main div[onclick]').count(), 0);
    const hrefs = await content.locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    // Only the image's http URL (as a link, not fetched) and the mailto.
    assert.deepEqual(hrefs, [tracker, 'mailto:someone@example.org']);
    assert.equal(await content.getByRole('link', { name: 'Image: tracking pixel' }).count(), 1);
    assert.ok(text.includes('js link') && text.includes('data link'), 'unsafe links keep their text');
    for (const a of await content.locator('a').all()) await a.evaluate((el) => el.addEventListener('click', (e) => e.preventDefault()));
    await page.waitForTimeout(300);
    assert.deepEqual(requested, [], 'nothing fetched from elsewhere');
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
  });
});

describe('the composer', () => {
  test('a draft stays with its chat (switching and reload); the role starts as user in each chat', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const a = await seedSession(user, { name: 'Chat A' });
    const b = await seedSession(user, { name: 'Chat B' });
    await openApp(page, user, `sessions/${a.id}`);
    await page.getByLabel('Role', { exact: true }).selectOption('assistant');
    await messageBox(page).fill('half-written for A');
    await page.getByRole('link', { name: /Chat B/ }).click();
    await page.getByRole('heading', { name: 'Chat B' }).waitFor();
    assert.equal(await messageBox(page).inputValue(), '');
    assert.equal(await page.getByLabel('Role', { exact: true }).inputValue(), 'user');
    // Enter in B sends nothing: A's text did not follow.
    await messageBox(page).press('Enter');
    await page.waitForTimeout(300);
    assert.equal((await call('GET', `/api/chat/sessions/${b.id}`, { user })).body.message_count, 0);
    await messageBox(page).fill('for B');
    await page.getByRole('link', { name: /Chat A/ }).click();
    await page.getByRole('heading', { name: 'Chat A' }).waitFor();
    assert.equal(await messageBox(page).inputValue(), 'half-written for A');
    await page.reload();
    await ready(page);
    assert.equal(await messageBox(page).inputValue(), 'half-written for A');
    await page.getByRole('link', { name: /Chat B/ }).click();
    await page.getByRole('heading', { name: 'Chat B' }).waitFor();
    assert.equal(await messageBox(page).inputValue(), 'for B');
    // Sent, the draft is gone.
    await messageBox(page).press('Enter');
    await page.locator('#messages .content', { hasText: 'for B' }).waitFor();
    await page.reload();
    await ready(page);
    assert.equal(await messageBox(page).inputValue(), '');
    assert.equal((await call('GET', `/api/chat/sessions/${a.id}`, { user })).body.message_count, 0);
  });
});

describe('fresh views', () => {
  test('a message posted elsewhere and a rename elsewhere show when the tab is visible again; unchanged is a 304', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, { name: 'Shared', messages: [['user', 'first']] });
    await openApp(page, user, `sessions/${session.id}`);
    await page.locator('#messages .content', { hasText: 'first' }).waitFor();
    // The revalidation is awaited, not given a fixed time: a slow machine
    // answers it later, and the app's timer may revalidate again meanwhile.
    const revalidation = page.waitForResponse(async (r) =>
      new URL(r.url()).pathname === `/api/chat/sessions/${session.id}` && Boolean(await r.request().headerValue('if-none-match')));
    await becomeVisible(page);
    assert.equal((await revalidation).status(), 304, 'nothing changed: a 304');

    await call('POST', `/api/chat/sessions/${session.id}/messages`, { user, body: { message_type: 'assistant', content: 'from **another** tab' } });
    await call('PUT', `/api/chat/sessions/${session.id}`, { user, body: { session_name: 'Renamed on the phone' } });
    await becomeVisible(page);
    await page.locator('#messages .content', { hasText: 'from another tab' }).waitFor();
    assert.deepEqual(await shownMessages(page), ['first', 'from another tab']);
    await page.getByRole('heading', { name: 'Renamed on the phone' }).waitFor();
    assert.match(await page.locator('#chat-meta').textContent(), /^2 messages/);
    await page.locator('#sessions a .name', { hasText: 'Renamed on the phone' }).waitFor();
    assert.match(await page.locator('#sessions a[aria-current="page"] .meta').textContent(), /^2 messages/);
    // Archive from here now works: this page has the current version.
    await button(page, 'Archive').click();
    await button(page, 'Restore').waitFor();
    assert.equal(await page.getByRole('alert').locator('.error').count(), 0);
  });

  test('one error banner at a time, gone once the service answers again', async (t) => {
    const page = await newPage(browser, t, { expectedErrors: [/net::ERR_FAILED/] });
    const user = newUser();
    const session = await seedSession(user, { name: 'Offline', messages: [['user', 'hi']] });
    await openApp(page, user, `sessions/${session.id}`);
    await page.route('**/api/chat/**', (route) => route.abort());
    await button(page, 'New chat').click();
    await messageBox(page).fill('while offline');
    await button(page, 'Send').click();
    await becomeVisible(page);
    await button(page, 'New chat').click();
    const alert = page.getByRole('alert');
    await alert.getByText('The service cannot be reached').waitFor();
    await page.waitForTimeout(200);
    assert.equal(await alert.locator('.error').count(), 1);
    await page.unroute('**/api/chat/**');
    await becomeVisible(page);
    await page.waitForFunction(() => document.querySelectorAll('#errors .error').length === 0);
    assert.equal(await messageBox(page).inputValue(), 'while offline', 'the text is kept');
  });

  test('placeholders while the list and a chat load', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, { name: 'Slow chat', messages: [['user', 'eventually']] });
    let delay = true;
    await page.route((url) => url.pathname === '/api/chat/sessions', async (route) => {
      if (delay) await new Promise((r) => setTimeout(r, 800));
      await route.continue();
    });
    await page.addInitScript((u) => localStorage.setItem('chat-sessions.user', u), user);
    await page.goto(`${APP}/api/ui/`);
    await page.locator('#sessions .skeleton').first().waitFor();
    assert.equal(await page.locator('#sessions').getAttribute('aria-busy'), 'true');
    await page.locator('#sessions a', { hasText: 'Slow chat' }).waitFor();
    assert.equal(await page.locator('#sessions .skeleton').count(), 0);
    delay = false;
    // The chat's messages are held until its placeholders have been seen,
    // so what is shown while they load is checked however slow the machine.
    let release;
    const held = new Promise((r) => { release = r; });
    await page.route((url) => url.pathname === `/api/chat/sessions/${session.id}/messages`, async (route) => {
      await held;
      await route.continue();
    });
    await page.getByRole('link', { name: /Slow chat/ }).click();
    await page.locator('#messages .skeleton').first().waitFor();
    assert.equal(await page.locator('#chat-title').textContent(), 'Slow chat');
    assert.equal(await page.locator('#messages .content').count(), 0);
    release();
    await page.locator('#messages .content', { hasText: 'eventually' }).waitFor();
    assert.equal(await page.locator('#messages .skeleton').count(), 0);
  });

  test('older messages load as the reader scrolls up', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const messages = Array.from({ length: 120 }, (_, i) => ['user', `message ${i + 1}`]);
    const session = await seedSession(user, { name: 'Long', messages });
    await openApp(page, user, `sessions/${session.id}`);
    await page.locator('#messages .content', { hasText: 'message 120' }).waitFor();
    assert.equal((await shownMessages(page)).length, 50);
    await page.locator('#scroller').evaluate((s) => { s.scrollTop = 0; });
    await page.waitForFunction(() => document.querySelectorAll('#messages .message').length >= 100);
    await page.locator('#scroller').evaluate((s) => { s.scrollTop = 0; });
    await page.locator('#messages .content', { hasText: /^message 1$/ }).waitFor();
    assert.deepEqual(await shownMessages(page), messages.map(([, c]) => c));
  });
});

describe('reading and moving around', () => {
  test('right-to-left text is laid out right to left, per message and name', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, {
      name: 'مرحبا بالعالم',
      messages: [['user', 'שלום, מה שלומך?'], ['assistant', 'مرحبا! كيف يمكنني المساعدة؟\n\nAnd a paragraph in English.'], ['user', 'Hello in English']],
    });
    await openApp(page, user, `sessions/${session.id}`);
    await page.locator('#messages .content').nth(2).waitFor();
    const directions = await page.locator('#messages .content p').evaluateAll((ps) => ps.map((p) => getComputedStyle(p).direction));
    // Each paragraph by its own text: a message may mix languages.
    assert.deepEqual(directions, ['rtl', 'rtl', 'ltr', 'ltr']);
    assert.equal(await page.locator('#chat-title').evaluate((e) => getComputedStyle(e).direction), 'rtl');
    assert.equal(await page.locator('#sessions a .name').first().evaluate((e) => getComputedStyle(e).direction), 'rtl');
  });

  test('focus: the chat heading after opening one with Enter; back to Rename after Esc', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    await seedSession(user, { name: 'Keyboard chat', messages: [['user', 'hi']] });
    await openApp(page, user);
    await page.getByRole('link', { name: /Keyboard chat/ }).focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement?.id === 'chat-title');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Keyboard chat');
    await button(page, 'Rename').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement?.id === 'rename-input');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => document.activeElement?.id === 'rename');
    assert.equal(await page.locator('#rename-form').isVisible(), false);
    // The message scroller can be reached and scrolled with the keyboard.
    assert.equal(await page.locator('#scroller').getAttribute('tabindex'), '0');
  });

  test('search says its rules and marks only what the server matched', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    await seedSession(user, { name: 'Clusters', messages: [['user', 'minikube runs Kubernetes locally; KUBE-proxy too']] });
    await openApp(page, user);
    const box = page.getByRole('searchbox', { name: 'Search' });
    await box.focus();
    const hint = page.locator('#search-hint');
    assert.ok(await hint.isVisible());
    assert.match(await box.evaluate((b) => document.getElementById(b.getAttribute('aria-describedby')).textContent), /every word/);
    await box.fill('kube');
    const hit = page.locator('#results-list a').first();
    await hit.waitFor();
    // "minikube" holds kube, but not at the start of a word.
    assert.deepEqual(await hit.locator('mark').allTextContents(), ['Kube', 'KUBE']);
  });

  test('an archived chat is read-only, with Restore where the message box was', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, { name: 'Old', messages: [['user', 'hi']] });
    await call('PUT', `/api/chat/sessions/${session.id}`, { user, body: { is_active: false } });
    await openApp(page, user, `sessions/${session.id}`);
    await page.getByText('This chat is archived').waitFor();
    assert.equal(await messageBox(page).isVisible(), false);
    assert.equal(await button(page, 'Archive').count(), 0);
    await button(page, 'Restore').click();
    await messageBox(page).waitFor();
    await page.waitForFunction(() => document.activeElement?.id === 'message');
    assert.equal((await call('GET', `/api/chat/sessions/${session.id}`, { user })).body.is_active, true);
  });

  test('the delete dialog counts in words; export offers only what can be exported', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const empty = await seedSession(user, { name: 'Empty' });
    await seedSession(user, { name: 'Two', messages: [['user', 'a'], ['user', 'b']] });
    await openApp(page, user, `sessions/${empty.id}`);
    await button(page, 'Delete').click();
    await page.getByRole('dialog').getByText('“Empty” (no messages) will be deleted.').waitFor();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('link', { name: /Two/ }).click();
    await page.getByRole('heading', { name: 'Two' }).waitFor();
    await button(page, 'Delete').click();
    await page.getByRole('dialog').getByText('“Two” and its 2 messages will be deleted.').waitFor();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.goto(`${APP}/api/ui/`);
    await ready(page);
    await button(page, 'Export').click();
    const dialog = page.getByRole('dialog');
    assert.equal(await dialog.getByRole('radio', { name: 'This chat' }).isVisible(), false);
    assert.equal(await dialog.getByLabel('Format').isVisible(), false);
    assert.ok(await dialog.getByRole('radio', { name: /All chats/ }).isChecked());
  });
});

describe('your data', () => {
  test('under Easy Auth, erase asks for the id the platform gave (learnt from the sessions)', async (t) => {
    const principal = newUser('principal');
    const headers = { 'X-MS-CLIENT-PRINCIPAL-ID': principal, 'X-MS-CLIENT-PRINCIPAL-NAME': `${principal}@example.com` };
    const page = await newPage(browser, t, { contextOptions: { extraHTTPHeaders: headers } });
    const created = await call('POST', '/api/chat/sessions', { base: EASYAUTH(), headers, body: { session_name: 'Signed in' } });
    assert.equal(created.status, 201);
    await page.goto(`${EASYAUTH()}/api/ui/`);
    await ready(page);
    await page.locator('#sessions a', { hasText: 'Signed in' }).waitFor();
    await button(page, 'Erase data').click();
    const dialog = page.getByRole('dialog', { name: 'Erase all your data?' });
    await dialog.getByLabel(`Type “${principal}” to confirm`).fill(principal);
    await dialog.getByRole('button', { name: 'Erase everything' }).click();
    await dialog.getByText('Erased.').waitFor();
    assert.match(await dialog.locator('#erase-result').textContent(), /1 chat and 0 messages deleted/);
    assert.equal((await call('GET', '/api/chat/sessions', { base: EASYAUTH(), headers })).body.sessions.length, 0);
  });

  test('import a ChatGPT export through the file picker: progress, counts, the chats listed', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    await openApp(page, user);
    await button(page, 'Import').click();
    const dialog = page.getByRole('dialog', { name: 'Import chats' });
    await dialog.getByLabel(/Drop the file here/).setInputFiles(FIXTURE);
    await dialog.locator('#import-chosen', { hasText: 'conversations.json' }).waitFor();
    await dialog.getByRole('button', { name: 'Import', exact: true }).click();
    await dialog.getByText('Imported.').waitFor();
    assert.match(await dialog.locator('#import-result').textContent(), /3 new chats, 0 chats with new messages, 19 messages added, 0 messages already here/);
    assert.equal(await dialog.locator('progress').evaluate((p) => p.value), 1);
    await dialog.getByRole('button', { name: 'Close' }).click();
    await page.locator('#sessions a .name', { hasText: 'Kyōto in spring 🌸' }).waitFor();
    await page.locator('#sessions a .name', { hasText: 'Résumé de réunion' }).waitFor();
    const listed = await call('GET', '/api/chat/sessions?limit=10&is_active=true', { user });
    assert.equal(listed.body.sessions.length, 2, 'the archived one is under Archived');
    // The same file again adds nothing; a broken file is refused with where.
    await button(page, 'Import').click();
    await dialog.getByLabel(/Drop the file here/).setInputFiles({ name: 'broken.json', mimeType: 'application/json', buffer: Buffer.from('[{"title": 1}]') });
    await dialog.getByRole('button', { name: 'Import', exact: true }).click();
    await dialog.locator('#import-result .failed').waitFor();
    assert.match(await dialog.locator('#import-result').textContent(), /conversation 0.*Nothing was imported/s);
  });

  test('erase asks for the user id, then everything is gone', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    await seedSession(user, { name: 'One', messages: [['user', 'a'], ['assistant', 'b']] });
    await seedSession(user, { name: 'Two', messages: [['user', 'c']] });
    const bystander = newUser();
    await seedSession(bystander, { name: 'Not mine' });
    await openApp(page, user);
    await page.locator('#sessions a', { hasText: 'One' }).waitFor();
    await button(page, 'Erase data').click();
    const dialog = page.getByRole('dialog', { name: 'Erase all your data?' });
    const confirm = dialog.getByLabel(`Type “${user}” to confirm`);
    await confirm.fill('someone else');
    assert.ok(await dialog.getByRole('button', { name: 'Erase everything' }).isDisabled());
    await confirm.fill(user);
    await dialog.getByRole('button', { name: 'Erase everything' }).click();
    await dialog.getByText('Erased.').waitFor();
    assert.match(await dialog.locator('#erase-result').textContent(), /2 chats and 3 messages deleted/);
    await dialog.getByRole('button', { name: 'Close' }).click();
    await page.locator('#sessions-empty').waitFor();
    assert.equal((await call('GET', '/api/chat/sessions', { user })).body.sessions.length, 0);
    assert.equal((await call('GET', '/api/chat/sessions', { user: bystander })).body.sessions.length, 1);
  });
});
