// The list of the user's chats (newest activity first, a page at a time,
// active or archived) and the app's URLs: /api/ui/sessions/<id>?message=<id>
// names the open chat and message.

import * as api from './api.js';
import { fill, h, time } from './dom.js';
import { $, plural, showError } from './notify.js';

export const UI = '/api/ui/';
const SESSIONS_PAGE = 30;

// app.js's state: the list's fields (sessions, show, sessionsToken, listEtag,
// listing, loadingMore, listBusy) and the open session.
let state;

export function route() {
  const rest = location.pathname.startsWith(UI) ? location.pathname.slice(UI.length) : '';
  const match = /^sessions\/([^/]+)\/?$/.exec(rest);
  const params = new URLSearchParams(location.search);
  return { sessionId: match ? decodeURIComponent(match[1]) : null, messageId: params.get('message') };
}

export const sessionUrl = (id, messageId) =>
  `${UI}sessions/${encodeURIComponent(id)}${messageId ? `?message=${encodeURIComponent(messageId)}` : ''}`;

export const sessionName = (s) => s.session_name || 'Untitled chat';

export function placeholders(n) {
  return Array.from({ length: n }, () => h('li', { class: 'skeleton', 'aria-hidden': 'true' }, h('span'), h('span')));
}

export async function loadSessions({ reset }) {
  if (!reset && state.loadingMore) return;
  const generation = reset ? ++state.listing : state.listing;
  if (reset) {
    state.sessions = [];
    state.sessionsToken = null;
    state.listEtag = null;
    state.listBusy = true;
    fill($('sessions'), placeholders(6));
    $('sessions').setAttribute('aria-busy', 'true');
    $('sessions-empty').hidden = true;
    $('more-sessions').hidden = true;
  }
  state.loadingMore = !reset;
  try {
    const { body: page, etag } = await api.listSessions({
      is_active: state.show === 'active',
      limit: SESSIONS_PAGE,
      continuation_token: reset ? undefined : state.sessionsToken,
    });
    if (generation !== state.listing) return;
    const known = new Set(state.sessions.map((s) => s.id));
    state.sessions.push(...page.sessions.filter((s) => !known.has(s.id)));
    state.sessionsToken = page.continuation_token;
    if (reset) state.listEtag = etag;
  } catch (e) {
    if (generation === state.listing) showError(e);
  } finally {
    if (generation === state.listing) {
      state.loadingMore = false;
      state.listBusy = false;
    }
  }
  if (generation === state.listing) renderSessions();
}

/** Revalidates the list's first page and merges it with what is shown. */
export async function refreshList() {
  const generation = state.listing;
  if (state.loadingMore || state.listBusy) return;
  const got = await api.listSessions({ is_active: state.show === 'active', limit: SESSIONS_PAGE }, state.listEtag);
  if (got.notModified || generation !== state.listing) return;
  const page = got.body.sessions;
  const ids = new Set(page.map((s) => s.id));
  const last = page[page.length - 1];
  // Keep the pages loaded below the first: what sorts after its last entry.
  const below = got.body.continuation_token && last
    ? state.sessions.filter((s) => !ids.has(s.id)
      && (s.updated_at < last.updated_at || (s.updated_at === last.updated_at && s.id < last.id)))
    : [];
  state.sessions = [...page, ...below];
  if (!got.body.continuation_token) state.sessionsToken = null;
  else if (!below.length) state.sessionsToken = got.body.continuation_token;
  state.listEtag = got.etag;
  renderSessions();
}

export function renderSessions() {
  const openId = state.open?.session.id ?? route().sessionId;
  if (state.listBusy) return; // the placeholders stay until the list is there
  $('sessions').removeAttribute('aria-busy');
  fill($('sessions'), state.sessions.map((s) => h('li', {},
    h('a', { href: sessionUrl(s.id), 'aria-current': s.id === openId ? 'page' : null },
      h('span', { class: s.session_name ? 'name' : 'name untitled', dir: 'auto' }, sessionName(s)),
      h('span', { class: 'meta' }, `${plural(s.message_count, 'message')} · `, time(s.updated_at))))));
  $('sessions-empty').hidden = state.sessions.length > 0;
  $('more-sessions').hidden = !state.sessionsToken;
}

/** Puts the open session's summary into the list (first, as the newest). */
export function listChanged(session, { moveToTop = false } = {}) {
  const index = state.sessions.findIndex((s) => s.id === session.id);
  const belongs = session.is_active === (state.show === 'active');
  if (index >= 0) state.sessions.splice(index, 1);
  if (belongs && (index >= 0 || moveToTop)) {
    state.sessions.splice(moveToTop || index < 0 ? 0 : index, 0, { ...session });
  }
  renderSessions();
}

/** Wires the list to the app's `shared` state: its tabs, More chats, and more as its end scrolls into view. */
export function wireList(shared) {
  state = shared;
  for (const radio of document.querySelectorAll('input[name="show"]')) {
    radio.addEventListener('change', () => {
      state.show = radio.value;
      loadSessions({ reset: true });
    });
  }
  $('more-sessions').addEventListener('click', () => loadSessions({ reset: false }));
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && state.sessionsToken) loadSessions({ reset: false });
  }).observe($('more-sessions'));
}
