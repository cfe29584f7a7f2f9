// The web app: a list of the user's chats on the left, the open chat on the
// right. The URL names the open chat and message (/api/ui/sessions/<id>
// ?message=<id>), so reload, back and shared links work.

import * as api from './api.js';
import { fill, h, highlight, prettyJson, time } from './dom.js';
import { codeBlock, render as markdown } from './markdown.js';

const $ = (id) => document.getElementById(id);
const UI = '/api/ui/';
const USER_KEY = 'chat-sessions.user';
const DRAFT_KEY = 'chat-sessions.draft';
const SESSIONS_PAGE = 30;
const MESSAGES_PAGE = 50;
// While the tab is visible the open chat and the list are revalidated this
// often; an unchanged chat costs a 304.
const REFRESH_MS = 15_000;
const mode = document.querySelector('meta[name="auth-mode"]').content;

const state = {
  features: { search: false, exportSession: false, exportAll: false, importFile: false, erase: false },
  show: 'active', // which sessions the list shows: active or archived
  sessions: [], // summaries, as listed
  sessionsToken: null,
  listEtag: null, // of the list's first page, to revalidate it
  listing: 0, // generation of the list being loaded
  loadingMore: false, // a next page is on its way
  listBusy: false, // the first page is on its way: placeholders are shown
  open: null, // the open session (without messages) and its ETag: { session, etag }
  opening: 0, // generation of the session being opened
  messages: [], // of the open session, oldest first
  olderCursor: null, // `before` for the next older page; null at the oldest
  loadingOlder: false,
  pendingId: null, // id of the message being sent: a retry sends the same id
  search: { q: '', token: null, running: 0 },
};

// The rendered item of each message of the open chat, so that a new message
// or a refresh renders only what is new.
let rendered = new Map();

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

// ---- announcements and errors -------------------------------------------

/** Says `text` to screen readers (the polite status region). */
function announce(text) {
  $('status').textContent = '';
  requestAnimationFrame(() => { $('status').textContent = text; });
}

// One banner at a time: a new error replaces the last. One that says the
// service is unreachable (or failing) goes away by itself once it answers.
let banner = null;

/** Shows an ApiError's title and detail; `action` adds a button. */
function showError(error, action) {
  const key = `${error.status}|${error.title}|${error.detail}|${action?.label ?? ''}`;
  const transient = error.status === 0 || error.status >= 500;
  if (banner?.key === key && $('errors').firstChild) return; // the same again: not announced twice
  const item = h('div', { class: 'error' },
    h('p', {}, h('strong', {}, error.title || 'Something went wrong'), error.detail ? ` ${error.detail}` : ''));
  if (action) {
    item.append(h('button', { type: 'button', onclick: async () => { clearErrors(); await action.run(); } }, action.label));
  }
  if (error.status === 401 && mode === 'easyauth') {
    const back = encodeURIComponent(location.pathname + location.search);
    item.append(h('a', { href: `/.auth/login/aad?post_login_redirect_uri=${back}`, class: 'button' }, 'Sign in'));
  }
  item.append(h('button', { type: 'button', class: 'dismiss', 'aria-label': 'Dismiss', onclick: clearErrors }, '×'));
  fill($('errors'), [item]);
  banner = { key, transient };
}

function clearErrors() {
  $('errors').replaceChildren();
  banner = null;
}

api.observe((answered, status) => {
  if (answered && status < 500 && banner?.transient) clearErrors();
});

// ---- routing ------------------------------------------------------------

function route() {
  const rest = location.pathname.startsWith(UI) ? location.pathname.slice(UI.length) : '';
  const match = /^sessions\/([^/]+)\/?$/.exec(rest);
  const params = new URLSearchParams(location.search);
  return { sessionId: match ? decodeURIComponent(match[1]) : null, messageId: params.get('message') };
}

const sessionUrl = (id, messageId) =>
  `${UI}sessions/${encodeURIComponent(id)}${messageId ? `?message=${encodeURIComponent(messageId)}` : ''}`;

/** Goes to `url`; `focus` ('heading' or 'message') moves focus into the chat it opens. */
async function navigate(url, focus) {
  if (url !== location.pathname + location.search) history.pushState(null, '', url);
  await applyRoute(focus);
}

async function applyRoute(focus) {
  const { sessionId, messageId } = route();
  if (sessionId) await openSession(sessionId, messageId, focus);
  else closeSession();
}

/** Follows same-app links without reloading the page. */
function followLink(event) {
  const link = event.target.closest('a[href^="/api/ui/"]');
  if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(link.getAttribute('href'), 'heading');
}

// ---- drafts -------------------------------------------------------------

// What was typed and not sent, per user and chat, kept across chats and
// reloads (in the browser only).
const drafts = new Map();
const draftKey = (id) => `${DRAFT_KEY}.${mode === 'easyauth' ? '' : $('user').value.trim()}.${id}`;

function saveDraft() {
  if (!state.open) return;
  const key = draftKey(state.open.session.id);
  const text = $('message').value;
  drafts.set(key, text);
  try {
    if (text) localStorage.setItem(key, text);
    else localStorage.removeItem(key);
  } catch {
    // Private mode: kept for this page only.
  }
}

function draftOf(id) {
  const key = draftKey(id);
  try {
    return localStorage.getItem(key) ?? drafts.get(key) ?? '';
  } catch {
    return drafts.get(key) ?? '';
  }
}

function dropDraft(id) {
  const key = draftKey(id);
  drafts.delete(key);
  try {
    localStorage.removeItem(key);
  } catch {
    // Nothing stored.
  }
}

// ---- the list of sessions -----------------------------------------------

const sessionName = (s) => s.session_name || 'Untitled chat';

function placeholders(n) {
  return Array.from({ length: n }, () => h('li', { class: 'skeleton', 'aria-hidden': 'true' }, h('span'), h('span')));
}

async function loadSessions({ reset }) {
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
async function refreshList() {
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

function renderSessions() {
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

async function openSession(id, messageId, focus) {
  if (state.open?.session.id === id) {
    if (messageId) await reveal(messageId, state.opening);
    else if (focus) focusChat(focus);
    return;
  }
  const generation = ++state.opening;
  saveDraft();
  state.open = null;
  showLoading(id);
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
    rendered = new Map();
    renderChat();
    renderSessions();
    if (messageId) await reveal(messageId, generation);
    else {
      scrollToEnd();
      if (focus) focusChat(focus);
    }
  } catch (e) {
    if (generation !== state.opening) return;
    showError(e);
    closeSession();
  }
}

/** The chat's frame at once, with placeholders until it has arrived. */
function showLoading(id) {
  const summary = state.sessions.find((s) => s.id === id);
  cancelRename();
  document.body.classList.add('chat-open');
  $('welcome').hidden = true;
  $('chat').hidden = false;
  $('chat-title').textContent = summary ? sessionName(summary) : 'Loading…';
  $('chat-meta').textContent = 'Loading…';
  $('scroller').setAttribute('aria-busy', 'true');
  fill($('messages'), placeholders(3).map((li) => { li.classList.add('message'); return li; }));
  $('messages-empty').hidden = true;
  $('older').hidden = true;
  // The composer belongs to this chat from now: its draft, a fresh role,
  // and nothing can be sent until the chat is there.
  $('message').value = draftOf(id);
  $('role').value = 'user';
  $('composer').inert = true;
  renderSessionsCurrent(id);
}

function renderSessionsCurrent(id) {
  for (const a of document.querySelectorAll('#sessions a')) {
    if (a.getAttribute('href') === sessionUrl(id)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function focusChat(focus) {
  const target = focus === 'message' && state.open?.session.is_active ? $('message') : $('chat-title');
  target.focus({ preventScroll: true });
}

function closeSession() {
  saveDraft();
  state.opening++;
  state.open = null;
  state.messages = [];
  rendered = new Map();
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
  const meta = [plural(session.message_count, 'message'), ' · started ', time(session.created_at, true)];
  if (!session.is_active) {
    meta.push(' · archived');
    if (session.archived_at) meta.push(' ', time(session.archived_at, true));
  }
  fill($('chat-meta'), meta);
  // An archived chat is read-only here: Restore stands where the message box was.
  $('archive').hidden = !session.is_active;
  $('composer').hidden = !session.is_active;
  $('composer').inert = false;
  $('archived-bar').hidden = session.is_active;
  renderMessages();
}

/**
 * A message's item. Tool calling (an assistant message's `tool_calls`, a
 * `tool` message's answer) is shown as compact blocks, collapsed until
 * opened; a message that is only that has no bubble.
 */
function messageItem(m) {
  const calls = m.tool_calls ?? [];
  const text = m.content.trim() !== '';
  const isTool = m.message_type === 'tool';
  const bubble = text && !isTool;
  // A tool message whose function is not known yet (its call is on an older page).
  const dataset = isTool && !answeredName(m) ? { id: m.id, unnamed: 'true' } : { id: m.id };
  return h('li', { class: `message ${m.message_type}${bubble ? '' : ' tool-only'}`, dataset, tabindex: '-1' },
    h('div', { class: 'message-head' }, h('span', { class: 'role' }, m.message_type), time(m.created_at, true)),
    bubble ? h('div', { class: 'content', dir: 'auto' }, markdown(m.content)) : null,
    calls.map(toolCall),
    isTool ? toolResult(m) : null,
    // Per-message actions; more will join Copy here.
    bubble ? h('div', { class: 'message-actions' },
      h('button', { type: 'button', class: 'copy', dataset: { copy: 'message' }, 'aria-label': 'Copy message' }, 'Copy')) : null);
}

const SVG = 'http://www.w3.org/2000/svg';

/** A wrench, drawn (no emoji font needed), in the text's colour; decorative. */
function wrench() {
  const svg = document.createElementNS(SVG, 'svg');
  for (const [k, v] of Object.entries({ class: 'tool-icon', viewBox: '0 0 16 16', 'aria-hidden': 'true', focusable: 'false' })) svg.setAttribute(k, v);
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', 'M8.24 7.76 3 13M13.59 4.67A3.2 3.2 0 1 1 11.33 2.41');
  svg.append(path);
  return svg;
}

/** A collapsed block: its summary says what it is, its body is text, never HTML. */
function toolBlock(kind, label, body) {
  return h('details', { class: `tool-block ${kind}` }, h('summary', {}, wrench(), h('span', {}, label)), body);
}

/** JSON indented, anything else as the text it is, under `label`; `what` names its Copy button. */
function payload(text, label, what) {
  const json = prettyJson(text);
  const options = { label, copy: 'Copy', copyName: `Copy ${what}` };
  return json === null ? codeBlock(text, null, { ...options, dir: 'auto' }) : codeBlock(json, 'json', options);
}

function toolCall(call) {
  const { name, arguments: args } = call.function;
  return toolBlock('call', ['Called ', h('code', {}, name)],
    payload(args, ['Arguments · call ', h('span', { class: 'call-id' }, call.id)], 'arguments'));
}

/** The function a tool message answers for: its own `name`, else the call's, when that is loaded. */
function answeredName(m) {
  if (m.name) return m.name;
  const call = state.messages.flatMap((x) => x.tool_calls ?? []).find((c) => c.id === m.tool_call_id);
  return call?.function.name ?? null;
}

function toolResult(m) {
  const name = answeredName(m);
  return toolBlock('result', name ? ['Result of ', h('code', {}, name)] : 'Tool result',
    payload(m.content, ['Answer to call ', h('span', { class: 'call-id' }, m.tool_call_id)], 'result'));
}

function renderMessages() {
  $('scroller').removeAttribute('aria-busy');
  const items = state.messages.map((m) => {
    let li = rendered.get(m.id);
    if (!li || (li.dataset.unnamed && answeredName(m))) {
      const open = li?.querySelector('details').open;
      li = messageItem(m);
      if (open) li.querySelector('details').open = true;
      rendered.set(m.id, li);
    }
    return li;
  });
  fill($('messages'), items);
  $('messages-empty').hidden = state.messages.length > 0;
  $('older').hidden = !state.olderCursor;
}

const scrollToEnd = () => { $('scroller').scrollTop = $('scroller').scrollHeight; };
const nearEnd = () => {
  const s = $('scroller');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
};

/** Loads the next older page, keeping what is on screen in place. */
async function loadOlder(limit = MESSAGES_PAGE) {
  if (!state.open || !state.olderCursor || state.loadingOlder) return;
  const { session } = state.open;
  state.loadingOlder = true;
  $('older').disabled = true;
  try {
    const page = await api.listMessages(session.id, { limit, before: state.olderCursor });
    if (state.open?.session.id !== session.id) return;
    const scroller = $('scroller');
    const fromEnd = scroller.scrollHeight - scroller.scrollTop;
    state.messages.unshift(...page.messages.reverse());
    state.olderCursor = page.next_before;
    renderMessages();
    scroller.scrollTop = scroller.scrollHeight - fromEnd;
  } finally {
    state.loadingOlder = false;
    $('older').disabled = false;
  }
}

/** Scrolls to a message and highlights it, loading older pages until it is there. */
async function reveal(messageId, generation) {
  try {
    while (!state.messages.some((m) => m.id === messageId) && state.olderCursor) {
      // An automatic load may be under way: wait for it rather than skip.
      if (state.loadingOlder) await new Promise((r) => setTimeout(r, 20));
      else await loadOlder(200);
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
  // A tool message's text is in its collapsed block: a link to it shows it.
  if (el.classList.contains('tool')) el.querySelector('details').open = true;
  el.scrollIntoView({ block: 'center' });
  el.focus({ preventScroll: true });
}

/** Takes a newer version of the open session (from a refresh or a 412). */
async function applyFresh(body, etag) {
  const id = body.id;
  const newest = body.messages?.at(-1);
  delete body.messages;
  state.open = { session: body, etag };
  if (newest && newest.id !== state.messages.at(-1)?.id) await fetchNewMessages(id);
  if (state.open?.session.id !== id) return;
  renderChat();
  listChanged(body);
}

/** Appends the messages posted elsewhere since the newest shown. */
async function fetchNewMessages(id) {
  const page = await api.listMessages(id, { limit: MESSAGES_PAGE });
  if (state.open?.session.id !== id) return;
  const have = new Set(state.messages.map((m) => m.id));
  const atEnd = nearEnd();
  const fresh = page.messages.filter((m) => !have.has(m.id)).reverse();
  if (state.messages.length && fresh.length === page.messages.length) {
    // More than a page arrived: start again from the newest page.
    state.messages = fresh;
    state.olderCursor = page.next_before;
  } else {
    state.messages.push(...fresh);
  }
  renderMessages();
  if (atEnd) scrollToEnd();
  if (fresh.length) announce(`${plural(fresh.length, 'new message')} in this chat`);
}

/** Revalidates the open chat: a 304 while nothing changed. */
async function refreshOpen() {
  if (!state.open) return;
  const { session, etag } = state.open;
  try {
    const got = await api.getSession(session.id, etag);
    if (state.open?.session.id !== session.id || got.notModified) return;
    await applyFresh(got.body, got.etag);
  } catch (e) {
    if (state.open?.session.id !== session.id) return;
    if (e.status === 404) {
      showError({ status: 404, title: 'This chat is gone', detail: 'It was deleted in another tab or on another device.' });
      state.sessions = state.sessions.filter((s) => s.id !== session.id);
      await navigate(UI);
    } else {
      throw e;
    }
  }
}

let refreshing = false;

/** Brings the open chat and the list up to date (on a timer, and when the tab shows again). */
async function refresh() {
  if (document.hidden || refreshing || document.body.dataset.ready !== 'true') return;
  refreshing = true;
  try {
    await Promise.all([refreshOpen(), refreshList()]);
  } catch (e) {
    showError(e);
  } finally {
    refreshing = false;
  }
}

/**
 * A change refused because the chat changed elsewhere (412): reads the chat
 * as it is now, shows it, and says in plain words what the other change was.
 */
async function conflicted(what, retry) {
  const before = state.open.session;
  let after;
  try {
    const got = await api.getSession(before.id);
    await applyFresh(got.body, got.etag);
    after = state.open.session;
  } catch (e) {
    showError(e.status === 404 ? { status: 404, title: 'This chat is gone', detail: 'It was deleted in another tab or on another device.' } : e);
    return;
  }
  const changes = [];
  if (after.session_name !== before.session_name) changes.push(`renamed to “${sessionName(after)}”`);
  if (after.is_active !== before.is_active) changes.push(after.is_active ? 'restored' : 'archived');
  const added = after.message_count - before.message_count;
  if (added > 0) changes.push(`given ${plural(added, 'new message')}`);
  const change = changes.length ? changes.join(' and ') : 'changed';
  showError({
    status: 412,
    title: 'This chat was changed elsewhere.',
    detail: `Meanwhile it was ${change} in another tab or on another device; this page now shows that. Your ${what} was not saved.`,
  }, { label: 'Try again', run: retry });
}

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
    await navigate(sessionUrl(body.id), 'message');
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
  if (!state.open || !state.open.session.is_active || !content.trim()) return;
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
    dropDraft(session.id);
    if (state.open?.session.id !== session.id) return;
    $('message').value = '';
    if (!state.messages.some((m) => m.id === message.id)) state.messages.push(message);
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

function cancelRename({ restoreFocus = false } = {}) {
  $('rename-form').hidden = true;
  if (restoreFocus) $('rename').focus();
}

async function rename(event) {
  event.preventDefault();
  const name = $('rename-input').value.trim();
  try {
    const session = await change({ session_name: name || null });
    cancelRename({ restoreFocus: true });
    listChanged(session);
  } catch (e) {
    if (e.status === 412) await conflicted(`rename to “${name}”`, () => startRename(name));
    else showError(e);
  }
}

async function archiveOrRestore() {
  const archiving = state.open.session.is_active;
  try {
    const session = await change({ is_active: !archiving });
    listChanged(session, { moveToTop: true });
    // The control pressed is gone: focus goes to what replaced it.
    (archiving ? $('restore') : $('message')).focus();
    announce(archiving ? 'Chat archived' : 'Chat restored');
  } catch (e) {
    if (e.status === 412) await conflicted(archiving ? 'archiving' : 'restoring', archiveOrRestore);
    else showError(e);
  }
}

function askDelete() {
  const { session } = state.open;
  const what = session.message_count
    ? `“${sessionName(session)}” and its ${plural(session.message_count, 'message')} will be deleted.`
    : `“${sessionName(session)}” (no messages) will be deleted.`;
  $('delete-text').textContent = `${what} This cannot be undone.`;
  $('delete-dialog').returnValue = '';
  $('delete-dialog').showModal();
}

async function confirmDelete() {
  if ($('delete-dialog').returnValue !== 'delete' || !state.open) return;
  const { session, etag } = state.open;
  try {
    await api.deleteSession(session.id, etag);
    dropDraft(session.id);
    state.sessions = state.sessions.filter((s) => s.id !== session.id);
    await navigate(UI);
    $('new-chat').focus();
  } catch (e) {
    if (e.status === 412) await conflicted('deletion', askDelete);
    else showError(e);
  }
}

// ---- copy ---------------------------------------------------------------

async function copy(event) {
  const button = event.target.closest('button.copy');
  if (!button) return;
  const li = button.closest('.message');
  const text = button.dataset.copy === 'code'
    ? button.closest('.code-block').querySelector('code').textContent
    : state.messages.find((m) => m.id === li?.dataset.id)?.content ?? '';
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    showError({ title: 'Could not copy', detail: 'The browser did not allow this page to use the clipboard.' });
    return;
  }
  const label = button.textContent;
  button.textContent = 'Copied';
  announce('Copied to the clipboard');
  setTimeout(() => { button.textContent = label; }, 1500);
}

// ---- export -------------------------------------------------------------

function askExport() {
  const { exportSession, exportAll } = state.features;
  const canSession = exportSession && Boolean(state.open);
  // Only what can be exported now is offered.
  $('export-session-choice').hidden = !canSession;
  $('export-all').disabled = !exportAll;
  (canSession ? $('export-session') : $('export-all')).checked = true;
  $('export-format-field').hidden = !canSession;
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

// ---- import -------------------------------------------------------------

let importing = null; // the chosen file

function askImport() {
  importing = null;
  $('import-file').value = '';
  $('import-chosen').textContent = '';
  $('import-progress').hidden = true;
  $('import-result').replaceChildren();
  $('import-start').disabled = true;
  $('import-dialog').showModal();
}

function chooseImport(file) {
  if (!file) return;
  importing = file;
  $('import-chosen').textContent = `${file.name} (${Math.max(1, Math.round(file.size / 1024))} KB)`;
  $('import-result').replaceChildren();
  $('import-start').disabled = false;
}

async function doImport(event) {
  event.preventDefault();
  if (!importing) return;
  const progress = $('import-progress');
  $('import-start').disabled = true;
  progress.hidden = false;
  progress.removeAttribute('value'); // indeterminate until the upload reports
  $('import-result').replaceChildren(h('p', {}, 'Importing…'));
  try {
    const r = await api.importFile(importing, (sent, total) => { progress.value = sent / total; });
    progress.value = 1;
    fill($('import-result'), [h('p', {}, h('strong', {}, 'Imported. '),
      `${plural(r.sessions_created, 'new chat')}, ${plural(r.sessions_updated, 'chat')} with new messages, `
      + `${plural(r.messages_added, 'message')} added, ${plural(r.messages_skipped, 'message')} already here.`)]);
    importing = null;
    loadSessions({ reset: true });
  } catch (e) {
    progress.hidden = true;
    $('import-start').disabled = false;
    fill($('import-result'), [h('p', { class: 'failed' }, h('strong', {}, `${e.title}. `), e.detail || '', ' Nothing was imported.')]);
  }
}

// ---- erase --------------------------------------------------------------

/** The user id the erase must be confirmed with, when the page knows it. */
function eraseTarget() {
  if (mode !== 'easyauth') return $('user').value.trim();
  // Under Easy Auth the platform names the user; their sessions carry the id.
  return state.sessions.find((s) => s.user_id)?.user_id ?? null;
}

function askErase() {
  const target = eraseTarget();
  const input = $('erase-confirm');
  input.value = '';
  input.disabled = target === '';
  $('erase-result').replaceChildren();
  $('erase-start').disabled = true;
  $('erase-close').textContent = 'Cancel';
  if (target === '') {
    $('erase-text').textContent = 'Chats without a user cannot be erased: name a user in the User field first.';
    $('erase-label').textContent = 'Your user id';
  } else {
    $('erase-text').textContent = `Every chat of ${target ? `“${target}”` : 'yours'}, with all its messages, will be deleted from this service. `
      + 'This cannot be undone; export your chats first to keep a copy.';
    $('erase-label').textContent = target ? `Type “${target}” to confirm` : 'Type your user id to confirm';
  }
  $('erase-dialog').showModal();
}

function eraseInput() {
  const target = eraseTarget();
  const value = $('erase-confirm').value.trim();
  $('erase-start').disabled = !value || (target !== null && value !== target);
}

async function doErase(event) {
  event.preventDefault();
  const confirm = $('erase-confirm').value.trim();
  if ($('erase-start').disabled || !confirm) return;
  $('erase-start').disabled = true;
  fill($('erase-result'), [h('p', {}, 'Erasing…')]);
  const total = { sessions: 0, messages: 0 };
  try {
    // A batch may end before everything is gone (`complete: false`): go on.
    for (let round = 0; round < 100; round++) {
      const r = await api.erase(confirm);
      total.sessions += r.sessions_deleted;
      total.messages += r.messages_deleted + r.legacy_messages_deleted;
      if (r.complete) break;
    }
    fill($('erase-result'), [h('p', {}, h('strong', {}, 'Erased. '),
      `${plural(total.sessions, 'chat')} and ${plural(total.messages, 'message')} deleted.`)]);
    $('erase-confirm').value = '';
    $('erase-close').textContent = 'Close';
    drafts.clear();
    await navigate(UI);
    loadSessions({ reset: true });
  } catch (e) {
    $('erase-start').disabled = false;
    fill($('erase-result'), [h('p', { class: 'failed' }, h('strong', {}, `${e.title}. `), e.detail || '')]);
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
        h('span', { class: hit.session_name ? 'name' : 'name untitled', dir: 'auto' }, highlight(hit.session_name || 'Untitled chat', q)),
        h('span', { class: 'meta' }, hit.message_id ? `${hit.message_type} · ` : 'in the name · ', time(hit.created_at)),
        // A name hit's snippet would only repeat the name.
        hit.message_id && hit.snippet ? h('span', { class: 'snippet', dir: 'auto' }, highlight(hit.snippet, q)) : null)));
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
  state.open = null;
  loadSessions({ reset: true });
  navigate(UI);
}

function showFeatures() {
  const f = state.features;
  $('search-form').hidden = !f.search;
  $('export').hidden = !f.exportSession && !f.exportAll;
  $('import').hidden = !f.importFile;
  $('erase').hidden = !f.erase;
}

// ---- start --------------------------------------------------------------

function wire() {
  document.addEventListener('click', followLink);
  window.addEventListener('popstate', () => applyRoute('heading'));
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
  // Older messages as the reader scrolls up to them; the button stays for
  // the keyboard.
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadOlder().catch(showError);
  }, { root: $('scroller'), rootMargin: '200px 0px 0px 0px' }).observe($('older'));
  $('older').addEventListener('click', () => loadOlder().catch(showError));
  $('messages').addEventListener('click', copy);
  $('composer').addEventListener('submit', send);
  $('message').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  // Changed text or role is a new message: it gets a new id.
  $('message').addEventListener('input', () => { state.pendingId = null; saveDraft(); });
  $('role').addEventListener('change', () => { state.pendingId = null; });
  $('rename').addEventListener('click', () => startRename());
  $('rename-form').addEventListener('submit', rename);
  $('rename-cancel').addEventListener('click', () => cancelRename({ restoreFocus: true }));
  $('rename-input').addEventListener('keydown', (e) => { if (e.key === 'Escape') cancelRename({ restoreFocus: true }); });
  $('archive').addEventListener('click', archiveOrRestore);
  $('restore').addEventListener('click', archiveOrRestore);
  $('delete').addEventListener('click', askDelete);
  $('delete-dialog').addEventListener('close', confirmDelete);
  $('back').addEventListener('click', () => navigate(UI));
  $('export').addEventListener('click', askExport);
  $('export-dialog').addEventListener('close', doExport);
  for (const radio of document.querySelectorAll('input[name="export-what"]')) {
    radio.addEventListener('change', () => { $('export-format-field').hidden = $('export-all').checked; });
  }
  $('import').addEventListener('click', askImport);
  $('import-file').addEventListener('change', () => chooseImport($('import-file').files[0]));
  $('import-form').addEventListener('submit', doImport);
  $('import-close').addEventListener('click', () => $('import-dialog').close());
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    chooseImport(e.dataTransfer.files[0]);
  });
  $('erase').addEventListener('click', askErase);
  $('erase-confirm').addEventListener('input', eraseInput);
  $('erase-form').addEventListener('submit', doErase);
  $('erase-close').addEventListener('click', () => $('erase-dialog').close());
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); runSearch(); });
  $('search').addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 300); });
  $('search').addEventListener('keydown', (e) => { if (e.key === 'Escape') endSearch(); });
  $('clear-search').addEventListener('click', () => { endSearch(); $('search').focus(); });
  $('more-results').addEventListener('click', () => runSearch({ more: true }));
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
  setInterval(refresh, REFRESH_MS);
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
  showFeatures();
  await opened;
  document.body.dataset.ready = 'true';
}

start();
