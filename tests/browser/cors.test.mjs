// CORS as a browser enforces it: a page served from another origin (a
// second local port) calls the API with fetch. The binary under test allows
// exactly http://127.0.0.1:<CORS_PAGE_PORT>; a page on any other port is
// refused, and so is every origin by a binary without CORS_ALLOWED_ORIGINS.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';

import { APP, EASYAUTH, call, launch, newPage, newUser } from './lib.mjs';

const ALLOWED_PORT = Number(process.env.CORS_PAGE_PORT);

/** Serves an empty page (a stand-in for a frontend's dev server) on `port` (0: any). */
function pageServer(port) {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>a frontend</title><p>another origin');
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

const origin = (server) => `http://127.0.0.1:${server.address().port}`;

let browser;
let allowed;
let refused;
before(async () => {
  assert.ok(ALLOWED_PORT > 0, 'CORS_PAGE_PORT is not set: run through `cargo test --test it browser`');
  browser = await launch();
  allowed = await pageServer(ALLOWED_PORT);
  refused = await pageServer(0);
});
after(async () => {
  await browser?.close();
  allowed?.close();
  refused?.close();
});

/** Runs `fetch` in the page; resolves to what a script there can see. */
function fetchFrom(page, url, init = {}) {
  return page.evaluate(async ({ url, init }) => {
    try {
      const r = await fetch(url, init);
      const headers = {};
      for (const name of ['etag', 'location', 'content-type']) headers[name] = r.headers.get(name);
      return { status: r.status, headers, body: await r.text() };
    } catch (e) {
      return { error: `${e.name}: ${e.message}` };
    }
  }, { url, init });
}

const blocked = [/has been blocked by CORS policy/, /net::ERR_FAILED/];

describe('CORS from a page on another origin', () => {
  test('an allowed origin creates, renames and deletes with fetch, reading ETag and Location', async (t) => {
    const page = await newPage(browser, t);
    await page.goto(origin(allowed));
    const user = newUser();
    const q = `?user_id=${user}`;
    // JSON bodies and If-Match make the browser send preflights first.
    const created = await fetchFrom(page, `${APP}/api/chat/sessions${q}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ session_name: 'from another origin' }),
    });
    assert.equal(created.status, 201, JSON.stringify(created));
    const id = JSON.parse(created.body).id;
    assert.ok(created.headers.etag, 'ETag is exposed');
    assert.match(created.headers.location, new RegExp(`/api/chat/sessions/${id}$`), 'Location is exposed');

    const renamed = await fetchFrom(page, `${APP}/api/chat/sessions/${id}${q}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', 'If-Match': created.headers.etag },
      body: JSON.stringify({ session_name: 'renamed across origins' }),
    });
    assert.equal(renamed.status, 200, JSON.stringify(renamed));
    const stale = await fetchFrom(page, `${APP}/api/chat/sessions/${id}${q}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', 'If-Match': created.headers.etag },
      body: JSON.stringify({ session_name: 'too late' }),
    });
    assert.equal(stale.status, 412, 'errors are readable too');
    assert.equal(JSON.parse(stale.body).title, 'Precondition failed');

    const listed = await fetchFrom(page, `${APP}/api/chat/sessions${q}`);
    assert.deepEqual(JSON.parse(listed.body).sessions.map((s) => s.session_name), ['renamed across origins']);

    const deleted = await fetchFrom(page, `${APP}/api/chat/sessions/${id}${q}`, {
      method: 'DELETE',
      headers: { 'If-Match': renamed.headers.etag },
    });
    assert.equal(deleted.status, 204, JSON.stringify(deleted));
    assert.equal((await call('GET', `/api/chat/sessions/${id}`, { user })).status, 404);
  });

  test('the preflight: 204, the route\'s methods, the headers the API reads, a max age', async () => {
    const response = await fetch(`${APP}/api/chat/sessions/session_x`, {
      method: 'OPTIONS',
      headers: {
        Origin: origin(allowed),
        'Access-Control-Request-Method': 'PUT',
        'Access-Control-Request-Headers': 'content-type,if-match',
      },
    });
    assert.equal(response.status, 204);
    assert.equal(response.headers.get('access-control-allow-origin'), origin(allowed));
    assert.equal(response.headers.get('access-control-allow-methods'), 'GET,PUT,DELETE');
    assert.equal(response.headers.get('access-control-allow-headers'), 'content-type,if-match,if-none-match,authorization');
    assert.ok(Number(response.headers.get('access-control-max-age')) > 0);
    assert.match(response.headers.get('vary'), /origin/i);
  });

  test('another origin is refused by the browser, and its write never happens', async (t) => {
    const page = await newPage(browser, t, { expectedErrors: blocked });
    await page.goto(origin(refused));
    const user = newUser();
    const write = await fetchFrom(page, `${APP}/api/chat/sessions?user_id=${user}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    assert.match(write.error ?? '', /TypeError/, JSON.stringify(write));
    const read = await fetchFrom(page, `${APP}/api/chat/sessions?user_id=${user}`);
    assert.match(read.error ?? '', /TypeError/, 'a simple GET is sent, but its answer is kept from the script');
    assert.deepEqual((await call('GET', '/api/chat/sessions', { user })).body.sessions, [], 'the refused preflight stopped the POST');
  });

  test('a service without CORS_ALLOWED_ORIGINS refuses every origin', async (t) => {
    const page = await newPage(browser, t, { expectedErrors: blocked });
    await page.goto(origin(allowed));
    const read = await fetchFrom(page, `${EASYAUTH()}/api/health`);
    assert.match(read.error ?? '', /TypeError/, JSON.stringify(read));
    const direct = await fetch(`${EASYAUTH()}/api/health`, { headers: { Origin: origin(allowed) } });
    assert.equal(direct.status, 200);
    assert.equal(direct.headers.get('access-control-allow-origin'), null);
  });
});
