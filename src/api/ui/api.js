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

async function request(method, path, { query = {}, body, ifMatch } = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  if (namesUser && user) url.searchParams.set('user_id', user);
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (ifMatch) headers['If-Match'] = ifMatch;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new ApiError(0, 'The service cannot be reached', e.message);
  }
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
const withEtag = async (response) => ({ body: await response.json(), etag: response.headers.get('ETag') });
const path = (id) => `/chat/sessions/${encodeURIComponent(id)}`;

/** Which optional endpoints this service offers, from its OpenAPI document. */
export async function features() {
  const doc = await request('GET', '/openapi.json').then(json);
  const has = (p) => Boolean(doc.paths?.[p]?.get);
  return {
    search: has('/api/chat/search'),
    exportSession: has('/api/chat/sessions/{session_id}/export'),
    exportAll: has('/api/chat/export'),
  };
}

/** A page of sessions, newest activity first. */
export const listSessions = (query) => request('GET', '/chat/sessions', { query }).then(json);

/** A new session; answers `{ body, etag }`. */
export const createSession = (fields = {}) =>
  request('POST', '/chat/sessions', { body: fields }).then(withEtag);

/** A session with only its newest message (the pager reads the rest); `{ body, etag }`. */
export const getSession = (id) =>
  request('GET', path(id), { query: { messages_limit: 1 } }).then(withEtag);

/** A page of messages, newest first, and the cursor to older ones. */
export const listMessages = (id, query) =>
  request('GET', `${path(id)}/messages`, { query }).then(json);

/** Changes a session if it still has `etag`; `{ body, etag }`. */
export const updateSession = (id, fields, etag) =>
  request('PUT', path(id), { body: fields, ifMatch: etag }).then(withEtag);

/** Deletes a session if it still has `etag`. */
export const deleteSession = (id, etag) => request('DELETE', path(id), { ifMatch: etag });

/** Appends a message; `{ body: message, etag: the session's new ETag }`. */
export const postMessage = (id, message) =>
  request('POST', `${path(id)}/messages`, { body: message }).then(withEtag);

/** A page of search hits, newest first. */
export const search = (query) => request('GET', '/chat/search', { query }).then(json);

/** One session as a file (`format`: json, markdown, ndjson): the response. */
export const exportSession = (id, format) =>
  request('GET', `${path(id)}/export`, { query: { format } });

/** Everything of the user as NDJSON: the response. */
export const exportAll = () => request('GET', '/chat/export');
