// The API client: one function per endpoint the app uses. A failed request
// throws an ApiError carrying the problem's title and detail (RFC 9457), so
// the page can show them.

const BASE = '/api';

/** An answer other than 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

// Local mode (AUTH_MODE=none): the user the page names; under Easy Auth the
// platform names the user and the page never sends a user_id.
let user = '';
let namesUser = true;

/** Sets how requests name their user: `mode` is the server's auth mode. */
export function configure(mode, userId) {
  namesUser = mode !== 'easyauth';
  user = namesUser ? userId.trim() : '';
}

// Told of every answer (`ok`: the service answered at all, whatever the
// status) so the page can clear a "cannot be reached" banner once it is back.
let onAnswer = () => {};

/** Sets the function told `(answered, status)` after every request. */
export function observe(fn) {
  onAnswer = fn;
}

function url(path, query) {
  const u = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') u.searchParams.set(key, value);
  }
  if (namesUser && user) u.searchParams.set('user_id', user);
  return u;
}

async function request(method, path, { query = {}, body, ifMatch, ifNoneMatch } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (ifMatch) headers['If-Match'] = ifMatch;
  if (ifNoneMatch) headers['If-None-Match'] = ifNoneMatch;
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      // The app keeps its own ETags; the browser's cache would only answer
      // its conditional requests with a stale 200.
      cache: 'no-store',
    });
  } catch {
    onAnswer(false, 0);
    throw new ApiError(0, 'The service cannot be reached', 'Check your connection; the page tries again by itself.');
  }
  onAnswer(true, response.status);
  if (response.status === 304) return response;
  if (!response.ok) throw await problem(response);
  return response;
}

async function problem(response) {
  const type = response.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    try {
      const p = await response.json();
      return new ApiError(response.status, p.title || response.statusText, p.detail || '');
    } catch {
      // Not the JSON it claims to be: fall through to the status line.
    }
  }
  return new ApiError(response.status, `${response.status} ${response.statusText}`.trim(), '');
}

const json = (response) => response.json();
const withEtag = async (response) => (response.status === 304
  ? { notModified: true, etag: response.headers.get('ETag') }
  : { body: await response.json(), etag: response.headers.get('ETag') });
const path = (id) => `/chat/sessions/${encodeURIComponent(id)}`;

/** Which optional endpoints this service offers, from its OpenAPI document. */
export async function features() {
  const doc = await request('GET', '/openapi.json').then(json);
  const has = (p, method = 'get') => Boolean(doc.paths?.[p]?.[method]);
  return {
    search: has('/api/chat/search'),
    exportSession: has('/api/chat/sessions/{session_id}/export'),
    exportAll: has('/api/chat/export'),
    importFile: has('/api/chat/import', 'post'),
    erase: has('/api/chat/erase', 'post'),
    // Conversations as trees: a message can be deleted (and edited, answered
    // again and switched between, which come with it).
    branches: has('/api/chat/sessions/{session_id}/messages/{message_id}', 'delete'),
  };
}

/** A page of sessions, newest activity first; `{ body, etag }`, or `{ notModified }` while `etag` is current. */
export const listSessions = (query, etag) =>
  request('GET', '/chat/sessions', { query, ifNoneMatch: etag }).then(withEtag);

/** A new session; answers `{ body, etag }`. */
export const createSession = (fields = {}) =>
  request('POST', '/chat/sessions', { body: fields }).then(withEtag);

/**
 * A session with only its newest message (the pager reads the rest);
 * `{ body, etag }`, or `{ notModified: true }` while `etag` is still its version.
 */
export const getSession = (id, etag) =>
  request('GET', path(id), { query: { messages_limit: 1 }, ifNoneMatch: etag }).then(withEtag);

/**
 * The session showing the branch through message `messageId`, all of it,
 * without making it the current one (a search hit on another branch);
 * `{ body, etag }`.
 */
export const getBranch = (id, messageId) =>
  request('GET', path(id), { query: { message_id: messageId } }).then(withEtag);

/** A page of messages, newest first, and the cursor to older ones. */
export const listMessages = (id, query) =>
  request('GET', `${path(id)}/messages`, { query }).then(json);

/**
 * Changes a session if it still has `etag` (`current_message_id`: makes the
 * branch through that message the current one); `{ body, etag }`.
 */
export const updateSession = (id, fields, etag) =>
  request('PUT', path(id), { body: fields, ifMatch: etag }).then(withEtag);

/** Deletes a session if it still has `etag`. */
export const deleteSession = (id, etag) => request('DELETE', path(id), { ifMatch: etag });

/** Appends a message; `{ body: message, etag: the session's new ETag }`. */
export const postMessage = (id, message) =>
  request('POST', `${path(id)}/messages`, { body: message }).then(withEtag);

/**
 * Changes one message in place (`fields`: its content and/or metadata; no
 * new version) if the session still has `etag`; `{ body, etag }` with the
 * edited message.
 */
export const editMessage = (id, messageId, fields, etag) =>
  request('PATCH', `${path(id)}/messages/${encodeURIComponent(messageId)}`, { body: fields, ifMatch: etag })
    .then(withEtag);

/**
 * Deletes one message (`subtree`: with every reply under it) if the session
 * still has `etag`; its replies move up to its parent. Answers the session's
 * new ETag.
 */
export const deleteMessage = (id, messageId, etag, subtree = false) =>
  request('DELETE', `${path(id)}/messages/${encodeURIComponent(messageId)}`, {
    query: { subtree: subtree ? 'true' : undefined },
    ifMatch: etag,
  }).then((response) => response.headers.get('ETag'));

/** A page of search hits, newest first. */
export const search = (query) => request('GET', '/chat/search', { query }).then(json);

/** One session as a file (`format`: json, markdown, ndjson): the response. */
export const exportSession = (id, format) =>
  request('GET', `${path(id)}/export`, { query: { format } });

/** Everything of the user as NDJSON: the response. */
export const exportAll = () => request('GET', '/chat/export');

/** Erases everything of the user (`confirm`: their id); one batch: `{ complete, …counts }`. */
export const erase = (confirm) => request('POST', '/chat/erase', { body: { confirm } }).then(json);

/**
 * Imports a file (ChatGPT's conversations.json or this service's export);
 * `progress(sent, total)` follows the upload. Answers the counts.
 * XMLHttpRequest, not fetch: only it reports upload progress.
 */
export function importFile(file, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url('/chat/import', {}));
    xhr.withCredentials = true;
    // The service tells the formats apart by their content; the type only has to be one it takes.
    xhr.setRequestHeader('Content-Type', /\.json$/i.test(file.name) ? 'application/json' : 'application/x-ndjson');
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) progress(e.loaded, e.total); });
    xhr.addEventListener('load', () => {
      onAnswer(true, xhr.status);
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON: the status line says it.
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body?.title || `${xhr.status} ${xhr.statusText}`.trim(), body?.detail || ''));
    });
    xhr.addEventListener('error', () => {
      onAnswer(false, 0);
      reject(new ApiError(0, 'The service cannot be reached', 'The file was not imported.'));
    });
    xhr.send(file);
  });
}
