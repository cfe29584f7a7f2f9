// The web app in Chromium against the real binary on the embedded store:
// what a person does with it, through the controls' accessible names.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { APP, EASYAUTH, call, launch, newPage, newUser, openApp, ready, seedSession, shownMessages } from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const button = (page, name) => page.getByRole('button', { name, exact: true });
const sessionLinks = (page) => page.locator('#sessions a .name');

async function post(page, role, text) {
  await page.getByLabel('Role', { exact: true }).selectOption(role);
  await page.getByLabel('Message', { exact: true }).fill(text);
  await button(page, 'Send').click();
  await page.locator('#messages .content', { hasText: text }).last().waitFor();
}

describe('the web app (local mode)', () => {
  test('a browser asking for / is sent to the app; the probe keeps its plain answer', async (t) => {
    const page = await newPage(browser, t);
    const response = await page.goto(`${APP}/`);
    assert.equal(new URL(page.url()).pathname, '/api/ui/');
    assert.equal(response.status(), 200);
    const probe = await fetch(`${APP}/`);
    assert.equal(await probe.text(), 'ok');
  });

  test('its answers carry a strict CSP and nosniff', async (t) => {
    const page = await newPage(browser, t);
    const responses = [];
    page.on('response', (r) => { if (new URL(r.url()).pathname.startsWith('/api/ui/')) responses.push(r); });
    await openApp(page, newUser());
    const paths = responses.map((r) => new URL(r.url()).pathname).sort();
    for (const file of ['/api/ui/', '/api/ui/app.js', '/api/ui/api.js', '/api/ui/dom.js', '/api/ui/style.css']) {
      assert.ok(paths.includes(file), `${file} not loaded: ${paths}`);
    }
    for (const r of responses) {
      const headers = await r.allHeaders();
      assert.match(headers['content-security-policy'], /default-src 'self'/);
      assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline|unsafe-eval/);
      assert.equal(headers['x-content-type-options'], 'nosniff');
    }
  });

  test('create, post as user and assistant, reload via the deep link', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    await seedSession(user, { name: 'Other chat', messages: [['user', 'elsewhere']] });
    await openApp(page, user);
    await button(page, 'New chat').click();
    await page.waitForURL(/\/api\/ui\/sessions\/session_/);
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
    await expectFocused(page, 'message');
    await post(page, 'user', 'Which tram goes to Belém?');
    await post(page, 'assistant', 'Tram 15E, from Praça da Figueira.');
    // Enter sends too; Shift+Enter is a new line.
    await page.getByLabel('Message', { exact: true }).fill('first line');
    await page.getByLabel('Message', { exact: true }).press('Shift+Enter');
    await page.getByLabel('Message', { exact: true }).pressSequentially('second line');
    await page.getByLabel('Message', { exact: true }).press('Enter');
    await page.locator('#messages .content', { hasText: 'second line' }).waitFor();
    const stored = await call('GET', `/api/chat/sessions/${id}`, { user });
    assert.equal(stored.status, 200);
    assert.deepEqual(stored.body.messages.map((m) => [m.message_type, m.content]), [
      ['user', 'Which tram goes to Belém?'],
      ['assistant', 'Tram 15E, from Praça da Figueira.'],
      ['assistant', 'first line\nsecond line'],
    ]);
    assert.equal(await page.getByLabel('Message', { exact: true }).inputValue(), '');

    await page.reload();
    await ready(page);
    assert.deepEqual(await shownMessages(page), stored.body.messages.map((m) => m.content));
    assert.deepEqual(await page.locator('#messages .role').allTextContents(), ['user', 'assistant', 'assistant']);
    assert.equal(await page.locator('#sessions a[aria-current="page"]').count(), 1);

    // A link to one message opens the chat there, highlighted.
    const first = stored.body.messages[0];
    await page.goto(`${APP}/api/ui/sessions/${id}?message=${first.id}`);
    await ready(page);
    const hit = page.locator('#messages .message.hit');
    await hit.waitFor();
    assert.equal(await hit.locator('.content').textContent(), first.content);
    assert.equal(await page.evaluate(() => document.activeElement.dataset.id), first.id);

    // Another chat, then Back returns to where the person was.
    await page.getByRole('link', { name: /Other chat/ }).click();
    await page.getByRole('heading', { name: 'Other chat' }).waitFor();
    assert.equal(await page.locator('#messages .message.hit').count(), 0);
    await page.goBack();
    await page.locator('#messages .message.hit').waitFor();
    assert.equal(await page.locator('#chat-title').textContent(), 'Untitled chat');
  });

  test('rename, and a 412 (someone else renamed it) says so in plain words, shows it, and offers to try again', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, { name: 'Old name', messages: [['user', 'hi']] });
    await openApp(page, user, `sessions/${session.id}`);
    await button(page, 'Rename').click();
    await page.getByLabel('Session name').fill('Trip to Lisbon');
    await page.getByLabel('Session name').press('Enter');
    await page.getByRole('heading', { name: 'Trip to Lisbon' }).waitFor();
    await sessionLinks(page).filter({ hasText: 'Trip to Lisbon' }).waitFor();
    assert.equal((await call('GET', `/api/chat/sessions/${session.id}`, { user })).body.session_name, 'Trip to Lisbon');

    // Another tab renames it; this page's ETag is now stale.
    assert.equal((await call('PUT', `/api/chat/sessions/${session.id}`, { user, body: { session_name: 'Renamed elsewhere' } })).status, 200);
    await button(page, 'Rename').click();
    await page.getByLabel('Session name').fill('Mine');
    await button(page, 'Save').click();
    const alert = page.getByRole('alert');
    await alert.getByText('This chat was changed elsewhere.').waitFor();
    const said = await alert.textContent();
    assert.match(said, /renamed to “Renamed elsewhere” in another tab or on another device/);
    assert.match(said, /Your rename to “Mine” was not saved/);
    assert.doesNotMatch(said, /ETag|If-Match|Precondition/i, 'no jargon');
    // The other change is shown at once, in the heading and the list.
    await page.getByRole('heading', { name: 'Renamed elsewhere' }).waitFor();
    await sessionLinks(page).filter({ hasText: 'Renamed elsewhere' }).waitFor();
    await alert.getByRole('button', { name: 'Try again' }).click();
    // What the person typed is still there, to save again.
    assert.equal(await page.getByLabel('Session name').inputValue(), 'Mine');
    await button(page, 'Save').click();
    await page.getByRole('heading', { name: 'Mine' }).waitFor();
    assert.equal((await call('GET', `/api/chat/sessions/${session.id}`, { user })).body.session_name, 'Mine');
  });

  test('archive and restore move a chat between Active and Archived', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, { name: 'Old project' });
    await seedSession(user, { name: 'Current project' });
    await openApp(page, user, `sessions/${session.id}`);
    await button(page, 'Archive').click();
    await button(page, 'Restore').waitFor();
    assert.equal((await call('GET', `/api/chat/sessions/${session.id}`, { user })).body.is_active, false);
    await expectList(page, ['Current project']);
    await page.getByRole('radio', { name: 'Archived' }).check();
    await expectList(page, ['Old project']);
    await button(page, 'Restore').click();
    await button(page, 'Archive').waitFor();
    await expectList(page, []);
    await page.getByRole('radio', { name: 'Active' }).check();
    await expectList(page, ['Old project', 'Current project']);
    assert.equal((await call('GET', `/api/chat/sessions/${session.id}`, { user })).body.is_active, true);
  });

  test('delete asks first, then the chat is gone', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, { name: 'Doomed', messages: [['user', 'bye']] });
    await openApp(page, user, `sessions/${session.id}`);
    await button(page, 'Delete').click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('“Doomed” and its 1 message will be deleted').waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.equal((await call('GET', `/api/chat/sessions/${session.id}`, { user })).status, 200);
    await button(page, 'Delete').click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete chat' }).click();
    await page.waitForURL(`${APP}/api/ui/`);
    await expectList(page, []);
    assert.equal((await call('GET', `/api/chat/sessions/${session.id}`, { user })).status, 404);
    // Its old link now says so.
    await page.goto(`${APP}/api/ui/sessions/${session.id}`);
    await ready(page);
    await page.getByRole('alert').getByText('Not found').waitFor();
  });

  test('markup in messages and names is shown as text and runs nothing', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>';
    const session = await seedSession(user, { name: `<i>name</i><img src=y onerror="window.__pwned=3">`, messages: [['assistant', evil]] });
    await openApp(page, user, `sessions/${session.id}`);
    await page.getByLabel('Message', { exact: true }).fill('<svg onload="window.__pwned=4"></svg> & &amp; "quotes"');
    await button(page, 'Send').click();
    await page.locator('#messages .content', { hasText: '"quotes"' }).waitFor();
    await page.reload();
    await ready(page);
    // HTML stays as written; `&amp;` is Markdown's way to write `&`.
    assert.deepEqual(await shownMessages(page), [evil, '<svg onload="window.__pwned=4"></svg> & & "quotes"']);
    assert.equal(await page.locator('#chat-title').textContent(), session.session_name);
    assert.equal(await sessionLinks(page).first().textContent(), session.session_name);
    assert.equal(await page.locator('main img, main script, main svg, main b, main i, nav img, nav i').count(), 0);
    await page.waitForTimeout(200);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.title(), `${session.session_name} · chat-sessions`);
  });

  test('errors from the API are shown with their title and detail, and the text is kept', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, { name: 'Soon gone' });
    await openApp(page, user, `sessions/${session.id}`);
    assert.equal((await call('DELETE', `/api/chat/sessions/${session.id}`, { user })).status, 204);
    await page.getByLabel('Message', { exact: true }).fill('Nothing I write is lost');
    await button(page, 'Send').click();
    const alert = page.getByRole('alert');
    await alert.getByText('Not found').waitFor();
    assert.match(await alert.textContent(), /session/i);
    assert.equal(await page.getByLabel('Message', { exact: true }).inputValue(), 'Nothing I write is lost');
    await alert.getByRole('button', { name: 'Dismiss' }).click();
    assert.equal(await alert.locator('.error').count(), 0);
  });

  test('long sessions load older messages on demand, and a link to an old message finds it', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const messages = Array.from({ length: 120 }, (_, i) => ['user', `message ${i + 1}`]);
    const session = await seedSession(user, { name: 'Long', messages });
    await openApp(page, user, `sessions/${session.id}`);
    await page.locator('#messages .content', { hasText: 'message 120' }).waitFor();
    assert.equal((await shownMessages(page)).length, 50);
    assert.equal((await shownMessages(page))[0], 'message 71');
    // The button (for the keyboard) loads the next older page...
    await button(page, 'Load older messages').click();
    await page.locator('#messages .content', { hasText: /^message 21$/ }).waitFor();
    // ...and so does scrolling up to it. Not a second click: the scroll that
    // Playwright makes before a click can let the observer load the last
    // page first, and the button is gone before the click.
    await page.locator('#scroller').evaluate((s) => { s.scrollTop = 0; });
    await page.locator('#messages .content', { hasText: /^message 1$/ }).waitFor();
    assert.deepEqual(await shownMessages(page), messages.map(([, c]) => c));
    assert.equal(await button(page, 'Load older messages').isVisible(), false);

    const { body } = await call('GET', `/api/chat/sessions/${session.id}/messages?limit=200`, { user });
    const third = body.messages.find((m) => m.content === 'message 3');
    // The link opens the chat at the top of its newest page, where the
    // observer asks for older pages while the message's branch is read.
    // Here those pages answer last (as a busy server may): they must not be
    // added to the branch, which is whole.
    await page.route((url) => url.searchParams.has('before'), async (route) => {
      await new Promise((r) => setTimeout(r, 1000));
      await route.continue();
    });
    const olderAnswered = page
      .waitForResponse((r) => new URL(r.url()).searchParams.has('before'), { timeout: 5000 })
      .catch(() => null); // no older page asked for: nothing to wait for
    await page.goto(`${APP}/api/ui/sessions/${session.id}?message=${third.id}`);
    await ready(page);
    const hit = page.locator('#messages .message.hit');
    await hit.waitFor();
    assert.equal(await hit.locator('.content').textContent(), 'message 3');
    assert.ok(await hit.isVisible());
    await expectInView(page, hit);
    await olderAnswered;
    await page.evaluate(() => new Promise(requestAnimationFrame));
    assert.equal(await button(page, 'Load older messages').isVisible(), false, 'nothing is older than a whole branch');
    assert.deepEqual(await shownMessages(page), messages.map(([, c]) => c));
    await expectInView(page, hit);
  });

  test('the list: newest first, more on demand, active and archived apart', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    for (let i = 1; i <= 35; i++) await seedSession(user, { name: `chat ${i}` });
    const archived = await seedSession(user, { name: 'archived one' });
    await call('PUT', `/api/chat/sessions/${archived.id}`, { user, body: { is_active: false } });
    await openApp(page, user);
    // The first page, newest first; the rest when the end of the list shows.
    await sessionLinks(page).nth(29).waitFor();
    assert.equal(await sessionLinks(page).first().textContent(), 'chat 35');
    await page.locator('#more-sessions').scrollIntoViewIfNeeded();
    await sessionLinks(page).nth(34).waitFor();
    const names = await sessionLinks(page).allTextContents();
    assert.deepEqual(names, Array.from({ length: 35 }, (_, i) => `chat ${35 - i}`));
    await page.getByRole('radio', { name: 'Archived' }).check();
    await expectList(page, ['archived one']);
  });

  test('the User field is remembered; another user sees other chats; empty is anonymous', async (t) => {
    const page = await newPage(browser, t);
    const alice = newUser('alice');
    await seedSession(alice, { name: 'Alice’s chat' });
    await page.goto(`${APP}/api/ui/`);
    await ready(page);
    const field = page.getByLabel('User', { exact: true });
    await field.fill(alice);
    await field.press('Enter');
    await expectList(page, ['Alice’s chat']);
    await page.reload();
    await ready(page);
    assert.equal(await field.inputValue(), alice);
    await expectList(page, ['Alice’s chat']);
    await field.fill(newUser('bob'));
    await field.press('Enter');
    await expectList(page, []);
    // Empty: anonymous sessions, created without user_id.
    await field.fill('');
    await field.press('Enter');
    await button(page, 'New chat').click();
    await page.waitForURL(/sessions\//);
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
    const anonymous = await call('GET', `/api/chat/sessions/${id}`);
    assert.equal(anonymous.status, 200);
    assert.equal(anonymous.body.user_id, null);
  });

  test('keyboard only: reach New chat, write, send', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    await openApp(page, user);
    await button(page, 'New chat').focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(/sessions\//);
    await expectFocused(page, 'message');
    await page.keyboard.type('typed, not clicked');
    await page.keyboard.press('Enter');
    await page.locator('#messages .content', { hasText: 'typed, not clicked' }).waitFor();
    // Focus is visible: the focused control draws an outline.
    await page.keyboard.press('Shift+Tab');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none');
  });

  test('phone width: the list, then the chat with a way back, nothing wider than the screen', async (t) => {
    const page = await newPage(browser, t, { contextOptions: { viewport: { width: 375, height: 740 } } });
    const user = newUser();
    const wide = ['```', 'x'.repeat(300), '```', '', '| a | b | c | d | e | f |', '|---|---|---|---|---|---|', `| ${'wide cell '.repeat(6)} | 2 | 3 | 4 | 5 | 6 |`].join('\n');
    const session = await seedSession(user, { name: 'On the phone', messages: [['user', 'a rather long message '.repeat(20)], ['assistant', wide]] });
    await openApp(page, user);
    await page.getByRole('link', { name: /On the phone/ }).click();
    await page.locator('#messages .content').first().waitFor();
    assert.equal(await page.locator('#sidebar').isVisible(), false);
    assert.ok(await page.getByLabel('Message', { exact: true }).isVisible());
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 375));
    // Wide code and tables scroll inside their own box, not the chat.
    await page.locator('#messages .code-block').waitFor();
    assert.ok(await page.locator('#scroller').evaluate((s) => s.scrollWidth <= s.clientWidth), 'the chat is no wider than the screen');
    await button(page, 'Chats').click();
    await page.waitForURL(`${APP}/api/ui/`);
    assert.ok(await page.locator('#sidebar').isVisible());
    assert.equal(new URL(page.url()).pathname, '/api/ui/');
    assert.ok(session.id);
  });

  test('Search and Export are shown exactly when the service offers them', async (t) => {
    const page = await newPage(browser, t);
    await openApp(page, newUser());
    const { body: doc } = await call('GET', '/api/openapi.json');
    const offers = (path) => Boolean(doc.paths[path]?.get);
    assert.equal(await page.getByRole('searchbox', { name: 'Search' }).isVisible(), offers('/api/chat/search'));
    assert.equal(
      await button(page, 'Export').isVisible(),
      offers('/api/chat/export') || offers('/api/chat/sessions/{session_id}/export'),
    );
  });
});

describe('the web app under Easy Auth', () => {
  const principal = (id) => ({ 'X-MS-CLIENT-PRINCIPAL-ID': id, 'X-MS-CLIENT-PRINCIPAL-NAME': `${id}@example.com` });

  test('no User field, no user_id sent: the platform names the user', async (t) => {
    const user = newUser('principal');
    // What App Service Authentication adds to every request of a signed-in browser.
    const page = await newPage(browser, t, { contextOptions: { extraHTTPHeaders: principal(user) } });
    const sent = [];
    page.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/api/chat')) sent.push(r.url()); });
    await page.goto(`${EASYAUTH()}/api/ui/`);
    await ready(page);
    assert.equal(await page.getByLabel('User', { exact: true }).isVisible(), false);
    await button(page, 'New chat').click();
    await page.waitForURL(/sessions\//);
    await post(page, 'user', 'signed in');
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
    const stored = await call('GET', `/api/chat/sessions/${id}`, { base: EASYAUTH(), headers: principal(user) });
    assert.equal(stored.body.user_id, user);
    assert.ok(sent.length >= 3, sent.join('\n'));
    for (const url of sent) assert.equal(new URL(url).searchParams.has('user_id'), false, url);
  });

  test('without a principal the 401 is shown with a way to sign in', async (t) => {
    const page = await newPage(browser, t);
    await page.goto(`${EASYAUTH()}/api/ui/`);
    await ready(page);
    const alert = page.getByRole('alert');
    await alert.getByText('Authentication required').first().waitFor();
    const signIn = alert.getByRole('link', { name: 'Sign in' }).first();
    assert.match(await signIn.getAttribute('href'), /^\/\.auth\/login\/aad\?post_login_redirect_uri=%2Fapi%2Fui%2F/);
  });
});

async function expectList(page, names) {
  await page.waitForFunction(
    (expected) => JSON.stringify([...document.querySelectorAll('#sessions a .name')].map((e) => e.textContent)) === expected
      && !document.querySelector('#browse').hidden,
    JSON.stringify(names),
  ).catch(async (e) => {
    throw new Error(`list is ${JSON.stringify(await page.locator('#sessions a .name').allTextContents())}, not ${JSON.stringify(names)}: ${e.message}`);
  });
}

async function expectFocused(page, id) {
  await page.waitForFunction((want) => document.activeElement?.id === want, id);
}

/** Waits (up to 5 s) until `locator` is inside the scroller's visible box. */
async function expectInView(page, locator) {
  const handle = await locator.elementHandle();
  await page.waitForFunction((el) => {
    const box = el.getBoundingClientRect();
    const scroller = document.getElementById('scroller').getBoundingClientRect();
    return box.top >= scroller.top && box.bottom <= scroller.bottom;
  }, handle, { timeout: 5000 }).catch(() => assert.fail('the message is not on screen'));
}
