// Shared by the browser tests: Debian's Chromium under Playwright, the
// servers under test (started by tests/it/browser.rs, passed in the
// environment), and a small API client to set data up and check it.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';

/** The browser: Debian's package, never a downloaded one. */
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function required(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run these tests through \`cargo test --test it browser\``);
  return value;
}

/** The binary in local mode (AUTH_MODE=none), CORS allowed for CORS_PAGE_PORT. */
export const APP = required('APP_URL');
/** The binary with AUTH_MODE=easyauth and no CORS setting. */
export const EASYAUTH = () => required('EASYAUTH_URL');

/**
 * Launches Chromium headless. Playwright gives each launch a fresh
 * --user-data-dir of its own (a new temporary profile), removed on close.
 */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    slowMo: Number(process.env.SLOW_MO || 0),
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A fresh page (its own context: no cookies, no storage) that fails the
 * test on any uncaught script error or console error (a CSP or Trusted
 * Types violation is reported there). `expectedErrors` are regexps of
 * console errors a test provokes on purpose (a refused request).
 */
export async function newPage(browser, t, { contextOptions = {}, expectedErrors = [] } = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, ...contextOptions });
  const page = await context.newPage();
  // CPU_THROTTLE=4 runs the page four times slower: races that a slow CI
  // machine would hit show up on a fast one.
  if (process.env.CPU_THROTTLE) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: Number(process.env.CPU_THROTTLE) });
  }
  const errors = [];
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  // Chromium logs every non-2xx answer as an error; the tests provoke some.
  const expected = [/^Failed to load resource: the server responded with a status of [45]\d\d/, ...expectedErrors];
  page.on('console', (m) => {
    if (m.type() === 'error' && !expected.some((re) => re.test(m.text()))) errors.push(`console: ${m.text()}`);
  });
  t.after(async () => {
    await context.close();
    assert.deepEqual(errors, [], 'the page logged errors');
  });
  return page;
}

/** A user id no other test uses. */
export const newUser = (prefix = 'user') => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Calls the API of `base` as `user` (local mode); returns { status, headers, body }. */
export async function call(method, path, { base = APP, user, body, headers = {} } = {}) {
  const url = new URL(path, base);
  if (user) url.searchParams.set('user_id', user);
  const response = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: keep the text.
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/**
 * Creates a session for `user` with `messages` ([type, content] pairs, or
 * whole message bodies as the API takes them); returns the session.
 */
export async function seedSession(user, { name, messages = [] } = {}) {
  const created = await call('POST', '/api/chat/sessions', { user, body: name ? { session_name: name } : {} });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  for (const message of messages) {
    const [message_type, content] = Array.isArray(message) ? message : [];
    const posted = await call('POST', `/api/chat/sessions/${created.body.id}/messages`, {
      user,
      body: Array.isArray(message) ? { message_type, content } : message,
    });
    assert.equal(posted.status, 201, JSON.stringify(posted.body));
  }
  return created.body;
}

/** Opens the app at `path` (under /api/ui/) as `user` and waits until it has started. */
export async function openApp(page, user, path = '') {
  if (user !== undefined) {
    await page.addInitScript((u) => localStorage.setItem('chat-sessions.user', u), user);
  }
  await page.goto(`${APP}/api/ui/${path}`);
  await ready(page);
}

/** Waits until the app has started (features known, the route applied). */
export async function ready(page) {
  await page.locator('body[data-ready="true"]').waitFor();
}

/** The texts of the messages shown (as rendered: line breaks kept), oldest first. */
export async function shownMessages(page) {
  return page.locator('#messages .content').allInnerTexts();
}
