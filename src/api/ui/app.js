// The web app: a list of the user's chats on the left, the open chat on the
// right. The URL names the open chat and message (/api/ui/sessions/<id>
// ?message=<id>), so reload, back and shared links work.

import * as api from './api.js';
import { fill, h, marked, time } from './dom.js';

const $ = (id) => document.getElementById(id);
const UI = '/api/ui/';
const USER_KEY = 'chat-sessions.user';
const SESSIONS_PAGE = 30;
const MESSAGES_PAGE = 50;
const mode = document.querySelector('meta[name="auth-mode"]').content;

const state = {
  features: { search: false, exportSession: false, exportAll: false },
  show: 'active', // which sessions the list shows: active or archived
  sessions: [], // summaries, as listed
  sessionsToken: null,
  listing: 0, // generation of the list being loaded
  loadingMore: false, // a next page is on its way
  open: null, // the open session (without messages) and its ETag: { session, etag }
  opening: 0, // generation of the session being opened
  messages: [], // of the open session, oldest first
  olderCursor: null, // `before` for the next older page; null at the oldest
  pendingId: null, // id of the message being sent: a retry sends the same id
  search: { q: '', token: null, running: 0 },
};

// ---- errors -------------------------------------------------------------

/** Shows an ApiError's title and detail; `action` adds a button. */
function showError(error, action) {
  const item = h('div', { class: 'error' },
    h('p', {}, h('strong', {}, error.title || 'Something went wrong'), error.detail ? ` ${error.detail}` : ''));
  const close = () => item.remove();
  if (action) {
    item.append(h('button', { type: 'button', onclick: async () => { close(); await action.run(); } }, action.label));
  }
  if (error.status === 401 && mode === 'easyauth') {
    const back = encodeURIComponent(location.pathname + location.search);
    item.append(h('a', { href: `/.auth/login/aad?post_login_redirect_uri=${back}`, class: 'button' }, 'Sign in'));
  }
  item.append(h('button', { type: 'button', class: 'dismiss', 'aria-label': 'Dismiss', onclick: close }, '×'));
  $('errors').append(item);
}

const clearErrors = () => $('errors').replaceChildren();

// ---- routing ------------------------------------------------------------

function route() {
  const rest = location.pathname.startsWith(UI) ? location.pathname.slice(UI.length) : '';
  const match = /^sessions\/([^/]+)\/?$/.exec(rest);
  const params = new URLSearchParams(location.search);
  return { sessionId: match ? decodeURIComponent(match[1]) : null, messageId: params.get('message') };
}

const sessionUrl = (id, messageId) =>
  `${UI}sessions/${encodeURIComponent(id)}${messageId ? `?message=${encodeURIComponent(messageId)}` : ''}`;

async function navigate(url) {
  if (url !== location.pathname + location.search) history.pushState(null, '', url);
  await applyRoute();
}

async function applyRoute() {
  const { sessionId, messageId } = route();
  if (sessionId) await openSession(sessionId, messageId);
  else closeSession();
}

/** Follows same-app links without reloading the page. */
function followLink(event) {
  const link = event.target.closest('a[href^="/api/ui/"]');
  if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(link.getAttribute('href'));
}

// ---- the list of sessions -----------------------------------------------

const sessionName = (s) => s.session_name || 'Untitled chat';

async function loadSessions({ reset }) {
  if (!reset && state.loadingMore) return;
  const generation = reset ? ++state.listing : state.listing;
  if (reset) {
    state.sessions = [];
    state.sessionsToken = null;
  }
  state.loadingMore = !reset;
  try {
    const page = await api.listSessions({
      is_active: state.show === 'active',
      limit: SESSIONS_PAGE,
      continuation_token: reset ? undefined : state.sessionsToken,
    });
    if (generation !== state.listing) return;
    const known = new Set(state.sessions.map((s) => s.id));
    state.sessions.push(...page.sessions.filter((s) => !known.has(s.id)));
    state.sessionsToken = page.continuation_token;
  } catch (e) {
    showError(e);
  } finally {
    if (generation === state.listing) state.loadingMore = false;
  }
  renderSessions();
}

function renderSessions() {
  const openId = state.open?.session.id;
  fill($('sessions'), state.sessions.map((s) => h('li', {},
    h('a', { href: sessionUrl(s.id), 'aria-current': s.id === openId ? 'page' : null },
      h('span', { class: s.session_name ? 'name' : 'name untitled' }, sessionName(s)),
      h('span', { class: 'meta' },
        `${s.message_count} message${s.message_count === 1 ? '' : 's'} · `, time(s.updated_at))))));
  $('sessions-empty').hidden = state.sessions.length > 0;
  $('more-sessions').hidden = !state.sessionsToken;
}

/** Puts the open session's summary into the list (first, as the newest). */
function listChanged(session, { moveToTop = false } = {}) {
  const index = state.sessions.findIndex((s) => s.id === session.id);
  const belongs = session.is_active === (state.show === 'active');
  if (index >= 0) state.sessions.splice(index, 1);
  if (belongs && (index >= 0 || moveToTop)) {
    state.sessions.splice(moveToTop || index < 0 ? 0 : index, 0, { ...session });
  }
  renderSessions();
}

// ---- the open session ---------------------------------------------------

async function openSession(id, messageId) {
  if (state.open?.session.id === id) {
    if (messageId) await reveal(messageId, state.opening);
    return;
  }
  const generation = ++state.opening;
  try {
    const [{ body: session, etag }, page] = await Promise.all([
      api.getSession(id),
      api.listMessages(id, { limit: MESSAGES_PAGE }),
    ]);
    if (generation !== state.opening) return;
    delete session.messages;
    state.open = { session, etag };
    state.messages = page.messages.reverse();
    state.olderCursor = page.next_before;
    state.pendingId = null;
    cancelRename();
    renderChat();
    renderSessions();
    if (messageId) await reveal(messageId, generation);
    else scrollToEnd();
  } catch (e) {
    if (generation !== state.opening) return;
    showError(e);
    closeSession();
  }
}

function closeSession() {
  state.opening++;
  state.open = null;
  state.messages = [];
  document.body.classList.remove('chat-open');
  $('chat').hidden = true;
  $('welcome').hidden = false;
  document.title = 'chat-sessions';
  renderSessions();
}

function renderChat() {
  const { session } = state.open;
  document.body.classList.add('chat-open');
  $('welcome').hidden = true;
  $('chat').hidden = false;
  $('chat-title').textContent = sessionName(session);
  $('chat-title').classList.toggle('untitled', !session.session_name);
  document.title = `${sessionName(session)} · chat-sessions`;
  const count = `${session.message_count} message${session.message_count === 1 ? '' : 's'}`;
  const meta = [count, ' · started ', time(session.created_at, true)];
  if (!session.is_active) {
    meta.push(' · archived');
    if (session.archived_at) meta.push(' ', time(session.archived_at, true));
  }
  fill($('chat-meta'), meta);
  $('archive').textContent = session.is_active ? 'Archive' : 'Restore';
  renderMessages();
}

function renderMessages() {
  fill($('messages'), state.messages.map((m) => h('li', { class: `message ${m.message_type}`, dataset: { id: m.id }, tabindex: '-1' },
    h('div', { class: 'message-head' }, h('span', { class: 'role' }, m.message_type), time(m.created_at, true)),
    h('div', { class: 'content' }, m.content))));
  $('messages-empty').hidden = state.messages.length > 0;
  $('older').hidden = !state.olderCursor;
}

const scrollToEnd = () => { $('scroller').scrollTop = $('scroller').scrollHeight; };

/** Loads the next older page, keeping what is on screen in place. */
async function loadOlder(limit = MESSAGES_PAGE) {
  const { session } = state.open;
  const page = await api.listMessages(session.id, { limit, before: state.olderCursor });
  if (state.open?.session.id !== session.id) return;
  const scroller = $('scroller');
  const fromEnd = scroller.scrollHeight - scroller.scrollTop;
  state.messages.unshift(...page.messages.reverse());
  state.olderCursor = page.next_before;
  renderMessages();
  scroller.scrollTop = scroller.scrollHeight - fromEnd;
}

/** Scrolls to a message and highlights it, loading older pages until it is there. */
async function reveal(messageId, generation) {
  try {
    while (!state.messages.some((m) => m.id === messageId) && state.olderCursor) {
      await loadOlder(200);
      if (generation !== state.opening) return;
    }
  } catch (e) {
    showError(e);
    return;
  }
  const el = [...$('messages').children].find((li) => li.dataset.id === messageId);
  if (!el) {
    showError({ title: 'Message not found', detail: `This chat has no message ${messageId}.` });
    return;
  }
  document.querySelectorAll('.message.hit').forEach((m) => m.classList.remove('hit'));
  el.classList.add('hit');
  el.scrollIntoView({ block: 'center' });
  el.focus({ preventScroll: true });
}

/** Reads the open session again (after someone else changed it). */
async function reloadOpen() {
  const id = state.open?.session.id;
  if (!id) return;
  state.open = null;
  await openSession(id, null);
}

/** What to offer when a change was refused because the session changed (412). */
const reloadOn412 = (e, then) => (e.status === 412 ? { label: 'Reload', run: async () => { await reloadOpen(); then?.(); } } : undefined);

async function change(fields) {
  const { session, etag } = state.open;
  const { body, etag: newEtag } = await api.updateSession(session.id, fields, etag);
  delete body.messages;
  state.open = { session: body, etag: newEtag };
  renderChat();
  return body;
}

// ---- actions ------------------------------------------------------------

async function newChat() {
  try {
    const { body } = await api.createSession({});
    delete body.messages;
    if (state.show !== 'active') {
      // A new chat is active: show where it is.
      document.querySelector('input[name="show"][value="active"]').checked = true;
      state.show = 'active';
      await loadSessions({ reset: true });
    }
    listChanged(body, { moveToTop: true });
    await navigate(sessionUrl(body.id));
    $('message').focus();
  } catch (e) {
    showError(e);
  }
}

function newMessageId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `msg_${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

async function send(event) {
  event.preventDefault();
  const content = $('message').value;
  if (!state.open || !content.trim()) return;
  const { session } = state.open;
  state.pendingId ??= newMessageId();
  $('send').disabled = true;
  try {
    const { body: message, etag } = await api.postMessage(session.id, {
      id: state.pendingId,
      content,
      message_type: $('role').value,
    });
    state.pendingId = null;
    $('message').value = '';
    if (state.open?.session.id !== session.id) return;
    state.messages.push(message);
    Object.assign(session, { message_count: session.message_count + 1, last_message_at: message.created_at, updated_at: message.created_at });
    state.open.etag = etag;
    renderChat();
    scrollToEnd();
    listChanged(session, { moveToTop: true });
  } catch (e) {
    // The text stays in the box; sending again reuses the id, so nothing doubles.
    showError(e);
  } finally {
    $('send').disabled = false;
    $('message').focus();
  }
}

function startRename(name) {
  $('rename-form').hidden = false;
  $('rename-input').value = name ?? state.open.session.session_name ?? '';
  $('rename-input').focus();
  $('rename-input').select();
}

function cancelRename() {
  $('rename-form').hidden = true;
}

async function rename(event) {
  event.preventDefault();
  const name = $('rename-input').value.trim();
  try {
    const session = await change({ session_name: name || null });
    cancelRename();
    listChanged(session);
    $('rename').focus();
  } catch (e) {
    showError(e, reloadOn412(e, () => startRename(name)));
  }
}

async function archiveOrRestore() {
  try {
    const session = await change({ is_active: !state.open.session.is_active });
    listChanged(session, { moveToTop: true });
  } catch (e) {
    showError(e, reloadOn412(e));
  }
}

function askDelete() {
  const { session } = state.open;
  $('delete-text').textContent = `“${sessionName(session)}” and its ${session.message_count} message(s) will be deleted. This cannot be undone.`;
  $('delete-dialog').returnValue = '';
  $('delete-dialog').showModal();
}

async function confirmDelete() {
  if ($('delete-dialog').returnValue !== 'delete' || !state.open) return;
  const { session, etag } = state.open;
  try {
    await api.deleteSession(session.id, etag);
    state.sessions = state.sessions.filter((s) => s.id !== session.id);
    await navigate(UI);
  } catch (e) {
    showError(e, reloadOn412(e));
  }
}

// ---- export -------------------------------------------------------------

function askExport() {
  const { exportSession, exportAll } = state.features;
  const canSession = exportSession && Boolean(state.open);
  $('export-session').disabled = !canSession;
  $('export-all').disabled = !exportAll;
  (canSession ? $('export-session') : $('export-all')).checked = true;
  $('export-format').disabled = !canSession;
  $('export-dialog').returnValue = '';
  $('export-dialog').showModal();
}

function fileName(disposition, fallback) {
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition || '');
  if (star) return decodeURIComponent(star[1]);
  const plain = /filename="?([^";]+)"?/i.exec(disposition || '');
  return plain ? plain[1] : fallback;
}

async function doExport() {
  if ($('export-dialog').returnValue !== 'download') return;
  try {
    const all = $('export-all').checked;
    const format = $('export-format').value;
    const response = all ? await api.exportAll() : await api.exportSession(state.open.session.id, format);
    const fallback = all ? 'chat-export.ndjson' : `chat.${format === 'markdown' ? 'md' : format}`;
    const url = URL.createObjectURL(await response.blob());
    const link = h('a', { href: url, download: fileName(response.headers.get('Content-Disposition'), fallback), hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (e) {
    showError(e);
  }
}

// ---- search -------------------------------------------------------------

let searchTimer;

async function runSearch({ more = false } = {}) {
  const q = $('search').value.trim();
  clearTimeout(searchTimer);
  if (!q) {
    endSearch();
    return;
  }
  const running = ++state.search.running;
  try {
    const page = await api.search({ q, limit: 20, continuation_token: more ? state.search.token : undefined });
    if (running !== state.search.running) return;
    state.search.q = q;
    state.search.token = page.continuation_token;
    const items = page.results.map((hit) => h('li', {},
      h('a', { href: sessionUrl(hit.session_id, hit.message_id) },
        h('span', { class: hit.session_name ? 'name' : 'name untitled' }, marked(hit.session_name || 'Untitled chat', q)),
        h('span', { class: 'meta' }, hit.message_id ? `${hit.message_type} · ` : 'in the name · ', time(hit.created_at)),
        // A name hit's snippet would only repeat the name.
        hit.message_id && hit.snippet ? h('span', { class: 'snippet' }, marked(hit.snippet, q)) : null)));
    if (more) $('results-list').append(...items);
    else fill($('results-list'), items);
    $('results-title').textContent = `Results for “${q}”`;
    $('results-empty').hidden = $('results-list').children.length > 0;
    $('more-results').hidden = !page.continuation_token;
    $('results').hidden = false;
    $('browse').hidden = true;
  } catch (e) {
    if (running === state.search.running) showError(e);
  }
}

function endSearch() {
  state.search.running++;
  state.search.q = '';
  $('search').value = '';
  $('results').hidden = true;
  $('browse').hidden = false;
}

// ---- who ----------------------------------------------------------------

function remembered() {
  try {
    return localStorage.getItem(USER_KEY) ?? '';
  } catch {
    return '';
  }
}

function userChanged() {
  const user = $('user').value.trim();
  try {
    localStorage.setItem(USER_KEY, user);
  } catch {
    // Private mode: not remembered, still used.
  }
  api.configure(mode, user);
  clearErrors();
  endSearch();
  loadSessions({ reset: true });
  navigate(UI);
}

// ---- start --------------------------------------------------------------

function wire() {
  document.addEventListener('click', followLink);
  window.addEventListener('popstate', applyRoute);
  $('user').addEventListener('change', userChanged);
  $('new-chat').addEventListener('click', newChat);
  for (const radio of document.querySelectorAll('input[name="show"]')) {
    radio.addEventListener('change', () => {
      state.show = radio.value;
      loadSessions({ reset: true });
    });
  }
  $('more-sessions').addEventListener('click', () => loadSessions({ reset: false }));
  // More chats as the end of the list scrolls into view.
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && state.sessionsToken) loadSessions({ reset: false });
  }).observe($('more-sessions'));
  $('older').addEventListener('click', () => loadOlder().catch(showError));
  $('composer').addEventListener('submit', send);
  $('message').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  // Changed text or role is a new message: it gets a new id.
  $('message').addEventListener('input', () => { state.pendingId = null; });
  $('role').addEventListener('change', () => { state.pendingId = null; });
  $('rename').addEventListener('click', () => startRename());
  $('rename-form').addEventListener('submit', rename);
  $('rename-cancel').addEventListener('click', cancelRename);
  $('rename-input').addEventListener('keydown', (e) => { if (e.key === 'Escape') cancelRename(); });
  $('archive').addEventListener('click', archiveOrRestore);
  $('delete').addEventListener('click', askDelete);
  $('delete-dialog').addEventListener('close', confirmDelete);
  $('back').addEventListener('click', () => navigate(UI));
  $('export').addEventListener('click', askExport);
  $('export-dialog').addEventListener('close', doExport);
  for (const radio of document.querySelectorAll('input[name="export-what"]')) {
    radio.addEventListener('change', () => { $('export-format').disabled = $('export-all').checked; });
  }
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); runSearch(); });
  $('search').addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 300); });
  $('search').addEventListener('keydown', (e) => { if (e.key === 'Escape') endSearch(); });
  $('clear-search').addEventListener('click', () => { endSearch(); $('search').focus(); });
  $('more-results').addEventListener('click', () => runSearch({ more: true }));
}

async function start() {
  if (mode !== 'easyauth') {
    $('who').hidden = false;
    $('user').value = remembered();
  }
  api.configure(mode, $('user').value);
  wire();
  loadSessions({ reset: true });
  const opened = applyRoute();
  try {
    state.features = await api.features();
  } catch (e) {
    showError(e);
  }
  $('search-form').hidden = !state.features.search;
  $('export').hidden = !state.features.exportSession && !state.features.exportAll;
  await opened;
  document.body.dataset.ready = 'true';
}

start();
