// A client generated from the repository's openapi.json, end to end through
// a fake App Service Authentication (Easy Auth) front: the document declares
// how a caller authenticates in Azure (securitySchemes easyAuthBearer and
// easyAuthCookie), so a generated client sends the credentials by itself.
//
// The generator is @hey-api/openapi-ts with its fetch client, run at test
// time on the current document into a temporary directory and compiled
// there with TypeScript (strict; a type error fails the test). Each SDK
// function carries its operation's `security`; the client's `auth` option
// only supplies a credential when the SDK asks for one of those schemes.
// No API call here is a hand-written fetch, and no credential is a
// hand-added header.
//
// The front stands for Easy Auth as the binary meets it in Azure: it
// accepts a known bearer token (`Authorization: Bearer …`) or session
// cookie (`AppServiceAuthSession=…`), drops any X-MS-CLIENT-PRINCIPAL*
// header the client sent, sets X-MS-CLIENT-PRINCIPAL-ID/-NAME to the
// principal the credential belongs to, answers 401 itself without one, and
// forwards to the binary with AUTH_MODE=easyauth (EASYAUTH_URL).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { createClient as generate } from '@hey-api/openapi-ts';
import ts from 'typescript';

import { APP, EASYAUTH, newUser } from './lib.mjs';

const DOCUMENT = fileURLToPath(new URL('../../openapi.json', import.meta.url));
const COOKIE = 'AppServiceAuthSession';

/**
 * Generates the client from DOCUMENT into `dir`/src, compiles it to
 * `dir`/js, and imports it: `{ sdk, createClient }`.
 */
async function generateClient(dir) {
  const src = path.join(dir, 'src');
  const out = path.join(dir, 'js');
  await generate({
    input: DOCUMENT,
    // Specifiers with `.js`, so that the compiled modules import one another.
    output: { path: src, module: { extension: '.js' } },
    plugins: ['@hey-api/typescript', '@hey-api/sdk', '@hey-api/client-fetch'],
    logs: { level: 'silent', file: false },
    interactive: false,
  });
  const files = (await readdir(src, { recursive: true }))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(src, f));
  assert.ok(files.some((f) => f.endsWith('sdk.gen.ts')), files.join('\n'));
  // ES modules, for the compiler (NodeNext reads it) and for the import.
  await writeFile(path.join(dir, 'package.json'), '{"type": "module"}\n');
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    types: [],
    strict: true,
    skipLibCheck: true,
    noEmitOnError: true,
    rootDir: src,
    outDir: out,
  });
  const emitted = program.emit();
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
  const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => dir, getNewLine: () => '\n' };
  assert.equal(diagnostics.length, 0, ts.formatDiagnostics(diagnostics, host));
  const load = (file) => import(pathToFileURL(path.join(out, file)).href);
  const [sdk, { createClient }] = await Promise.all([load('sdk.gen.js'), load('client/index.js')]);
  return { sdk, createClient };
}

/**
 * The fake Easy Auth front before `backend`. `tokens` and `cookies` map a
 * credential to its principal `{ id, name }`. `seen` holds the credentials
 * of every request that reached it.
 */
async function startFront(backend, { tokens, cookies }) {
  const target = new URL(backend);
  const seen = [];
  const principalOf = (headers) => {
    const bearer = /^Bearer (.+)$/i.exec(headers.authorization ?? '');
    // A token that is there but unknown is refused, as Easy Auth does.
    if (headers.authorization !== undefined) return bearer ? tokens.get(bearer[1]) : undefined;
    for (const pair of (headers.cookie ?? '').split(';')) {
      const [name, ...value] = pair.trim().split('=');
      if (name === COOKIE) return cookies.get(value.join('='));
    }
    return undefined;
  };
  const server = http.createServer((req, res) => {
    seen.push({ path: req.url, authorization: req.headers.authorization, cookie: req.headers.cookie });
    const principal = principalOf(req.headers);
    if (!principal) {
      req.resume();
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer realm="fake-easy-auth"' });
      res.end('You do not have permission to view this directory or page.');
      return;
    }
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(([name]) => !name.startsWith('x-ms-client-principal')),
    );
    headers.host = target.host;
    headers['x-ms-client-principal-id'] = principal.id;
    headers['x-ms-client-principal-name'] = principal.name;
    headers['x-ms-client-principal-idp'] = 'aad';
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', (e) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(e));
    });
    req.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** A principal as Entra names it: an object id and a user name. */
const principal = (who) => ({ id: randomUUID(), name: `${who}@example.com` });

// Key order and spacing as a model wrote them: kept as text.
const ARGUMENTS = '{"city":"Lisbon", "units":"metric"}';
const RESULT = '{"temp_c":21,"sky":"sunny"}';
const CALLS = [{ id: 'call_lisbon', type: 'function', function: { name: 'get_weather', arguments: ARGUMENTS } }];

describe('a client generated from openapi.json, through an Easy Auth front', () => {
  const alice = principal('alice');
  const bob = principal('bob');
  const TOKEN = `eyJ.${randomUUID()}.sig`;
  const SESSION_COOKIE = randomUUID().replaceAll('-', '');
  let dir;
  let sdk;
  let createClient;
  let front;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'chat-sessions-client-'));
    ({ sdk, createClient } = await generateClient(dir));
    front = await startFront(EASYAUTH(), {
      tokens: new Map([[TOKEN, alice]]),
      cookies: new Map([[SESSION_COOKIE, bob]]),
    });
  });
  after(async () => {
    await front?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The requests the front saw while `run` ran. */
  async function seenDuring(run) {
    const from = front.seen.length;
    await run();
    return front.seen.slice(from);
  }

  /** Asks only for the bearer scheme, as the SDK describes it. */
  const bearer = (token) => (auth) => (auth.type === 'http' && auth.scheme === 'bearer' ? token : undefined);
  /** Asks only for the cookie scheme, as the SDK describes it. */
  const cookie = (value) => (auth) => (auth.type === 'apiKey' && auth.in === 'cookie' && auth.name === COOKIE ? value : undefined);

  test('without credentials the call gets 401; the SDK asks for exactly the two declared schemes', async () => {
    const none = createClient({ baseUrl: front.url });
    const seen = await seenDuring(async () => {
      const { data, response } = await sdk.createSession({ client: none, body: {} });
      assert.equal(response.status, 401);
      assert.equal(data, undefined);
    });
    assert.deepEqual(seen.map((s) => [s.authorization, s.cookie]), [[undefined, undefined]]);

    // A client whose auth callback has nothing to give: what it is asked for
    // is what the document declares, in its order.
    const asked = [];
    const empty = createClient({ baseUrl: front.url, auth: (auth) => { asked.push({ ...auth }); } });
    const { response } = await sdk.listSessions({ client: empty });
    assert.equal(response.status, 401);
    assert.deepEqual(asked, [
      { type: 'http', scheme: 'bearer' },
      { type: 'apiKey', in: 'cookie', name: COOKIE },
    ]);

    // A token the front does not know is refused too.
    const wrong = createClient({ baseUrl: front.url, auth: bearer('not-a-token') });
    assert.equal((await sdk.listSessions({ client: wrong })).response.status, 401);
  });

  test('with a bearer token: create, send messages with tool calls, read the context, get the session', async () => {
    const client = createClient({ baseUrl: front.url, auth: bearer(TOKEN) });
    let session;
    const seen = await seenDuring(async () => {
      const created = await sdk.createSession({ client, body: { session_name: 'Weather' } });
      assert.equal(created.response.status, 201, JSON.stringify(created.error));
      session = created.data;
      assert.equal(session.user_id, alice.id);
      const sessionPath = { session_id: session.id };

      for (const body of [
        { message_type: 'user', content: 'What is the weather in Lisbon?' },
        { message_type: 'assistant', tool_calls: CALLS },
        { message_type: 'tool', tool_call_id: 'call_lisbon', name: 'get_weather', content: RESULT },
      ]) {
        const sent = await sdk.sendMessage({ client, path: sessionPath, body });
        assert.equal(sent.response.status, 201, JSON.stringify(sent.error));
        assert.equal(sent.data.message_type, body.message_type);
      }

      const context = await sdk.getSessionContext({ client, path: sessionPath, query: { max_tokens: 1000, format: 'openai' } });
      assert.equal(context.response.status, 200, JSON.stringify(context.error));
      assert.deepEqual(context.data.messages, [
        { role: 'user', content: 'What is the weather in Lisbon?' },
        { role: 'assistant', content: null, tool_calls: CALLS },
        { role: 'tool', content: RESULT, tool_call_id: 'call_lisbon' },
      ]);
      assert.equal(context.data.truncated, false);
      assert.equal(context.data.max_tokens, 1000);
      assert.ok(context.data.tokens > 0 && context.data.tokens <= 1000, String(context.data.tokens));

      const got = await sdk.getSession({ client, path: sessionPath });
      assert.equal(got.response.status, 200, JSON.stringify(got.error));
      assert.equal(got.data.user_id, alice.id, 'the owner is the principal of the token');
      assert.equal(got.data.session_name, 'Weather');
      assert.deepEqual(got.data.messages.map((m) => m.message_type), ['user', 'assistant', 'tool']);
      assert.deepEqual(got.data.messages[1].tool_calls, CALLS);
    });
    assert.equal(seen.length, 6);
    for (const s of seen) {
      assert.equal(s.authorization, `Bearer ${TOKEN}`, s.path);
      assert.equal(s.cookie, undefined, s.path);
    }
  });

  // hey-api's fetch client supports apiKey in a cookie: it appends
  // `Cookie: AppServiceAuthSession=<value>` (Node's fetch sends it).
  test('with the session cookie: the cookie principal owns what it creates', async () => {
    const client = createClient({ baseUrl: front.url, auth: cookie(SESSION_COOKIE) });
    const seen = await seenDuring(async () => {
      const created = await sdk.createSession({ client, body: { session_name: 'Signed in' } });
      assert.equal(created.response.status, 201, JSON.stringify(created.error));
      assert.equal(created.data.user_id, bob.id);
      const sent = await sdk.sendMessage({
        client,
        path: { session_id: created.data.id },
        body: { message_type: 'user', content: 'hello' },
      });
      assert.equal(sent.response.status, 201, JSON.stringify(sent.error));
      const got = await sdk.getSession({ client, path: { session_id: created.data.id } });
      assert.equal(got.data.user_id, bob.id, 'the owner is the principal of the cookie');
      assert.equal(got.data.message_count, 1);
      // Bob sees his sessions only.
      const listed = await sdk.listSessions({ client });
      assert.equal(listed.response.status, 200, JSON.stringify(listed.error));
      assert.deepEqual(listed.data.sessions.map((s) => s.id), [created.data.id]);
    });
    assert.equal(seen.length, 4);
    for (const s of seen) {
      assert.equal(s.cookie, `${COOKIE}=${SESSION_COOKIE}`, s.path);
      assert.equal(s.authorization, undefined, s.path);
    }
  });

  test('a principal header the client sends is not believed: the credential names the user', async () => {
    const spoofed = { 'X-MS-CLIENT-PRINCIPAL-ID': bob.id, 'X-MS-CLIENT-PRINCIPAL-NAME': bob.name };
    const client = createClient({ baseUrl: front.url, auth: bearer(TOKEN) });
    const created = await sdk.createSession({ client, body: {}, headers: spoofed });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    assert.equal(created.data.user_id, alice.id);
    const anonymous = createClient({ baseUrl: front.url });
    assert.equal((await sdk.createSession({ client: anonymous, body: {}, headers: spoofed })).response.status, 401);
  });

  test('locally (AUTH_MODE=none) the same client needs no credentials: security allows none', async () => {
    const user = newUser('client');
    const client = createClient({ baseUrl: APP });
    const created = await sdk.createSession({ client, body: { user_id: user } });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    assert.equal(created.data.user_id, user);
    const got = await sdk.getSession({ client, path: { session_id: created.data.id }, query: { user_id: user } });
    assert.equal(got.data.user_id, user);
  });
});
