// The web app: a list of the user's chats on the left, the open chat on the
// right. The URL names the open chat and message (/api/ui/sessions/<id>
// ?message=<id>), so reload, back and shared links work.

import * as api from './api.js';
import {
  closeEditor, controls, counted, countPosted, editing, leaveView, refreshView, renderBar, showBranchOf, signature, totalOf,
  wireBranches,
} from './branches.js';
import { fill, time } from './dom.js';
import { wireData } from './data.js';
import { clearDrafts, draftOf, dropDraft, saveDraft as keepDraft } from './drafts.js';
import {
  UI, listChanged, loadSessions, placeholders, refreshList, renderSessions, route, sessionName, sessionUrl, wireList,
} from './list.js';
import { answeredName, messageItem } from './message.js';
import { $, announce, clearErrors, mode, plural, showError } from './notify.js';
import { endSearch, wireSearch } from './search.js';

const USER_KEY = 'chat-sessions.user';
const MESSAGES_PAGE = 50;
// While the tab is visible the open chat and the list are revalidated this
// often; an unchanged chat costs a 304.
const REFRESH_MS = 15_000;

const state = {
  features: { search: false, exportSession: false, exportAll: false, importFile: false, erase: false, branches: false },
  show: 'active', // which sessions the list shows: active or archived
  sessions: [], // summaries, as listed
  sessionsToken: null,
  listEtag: null, // of the list's first page, to revalidate it
  listing: 0, // generation of the list being loaded
  loadingMore: false, // a next page is on its way
  listBusy: false, // the first page is on its way: placeholders are shown
  open: null, // the open session (without messages) and its ETag: { session, etag }
  opening: 0, // generation of the session being opened
  messages: [], // of the open session, oldest first: the branch shown
  view: null, // { anchor }: the branch shown is not the current one, but the one through this message
  olderCursor: null, // `before` for the next older page; null at the oldest
  loadingOlder: false,
  pendingId: null, // id of the message being sent: a retry sends the same id
};

// The rendered item of each message of the open chat, so that a new message
// or a refresh renders only what is new, and what each item shows.
let rendered = new Map();
const drawn = new WeakMap();
// Known once the OpenAPI document is read: a deep link waits for it.
let featuresKnown = Promise.resolve();

// ---- routing ------------------------------------------------------------

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

// ---- the open session ---------------------------------------------------

/** Keeps what is typed in the open chat's message box as its draft. */
function saveDraft() {
  if (state.open) keepDraft(state.open.session.id, $('message').value);
}

async function openSession(id, messageId, focus) {
  if (state.open?.session.id === id) {
    if (messageId) await reveal(messageId, state.opening);
    else if (focus) focusChat(focus);
    return;
  }
  const generation = ++state.opening;
  saveDraft();
  closeEditor();
  state.open = null;
  state.view = null;
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
    state.view = null;
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
  closeEditor();
  state.open = null;
  state.view = null;
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
  const meta = [counted(session), ' · started ', time(session.created_at, true)];
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
  renderBar();
  renderMessages();
}

function renderMessages() {
  $('scroller').removeAttribute('aria-busy');
  const items = state.messages.map((m) => {
    let li = rendered.get(m.id);
    // An item is drawn again when what it shows changed, not while its editor is open.
    if (li && editing(li)) return li;
    const look = signature(m);
    if (!li || drawn.get(li) !== look || (li.dataset.unnamed && answeredName(m, state.messages))) {
      const open = [...(li?.querySelectorAll('details') ?? [])].map((d) => d.open);
      const hit = li?.classList.contains('hit');
      li = messageItem(m, state.messages, controls(m));
      li.querySelectorAll('details').forEach((d, i) => { d.open = open[i] ?? false; });
      if (hit) li.classList.add('hit');
      rendered.set(m.id, li);
      drawn.set(li, look);
    }
    return li;
  });
  const list = $('messages');
  if (items.length !== list.children.length || items.some((li, i) => list.children[i] !== li)) {
    // Moving an item takes the focus out of it: put it back.
    const focused = list.contains(document.activeElement) ? document.activeElement : null;
    fill(list, items);
    if (focused?.isConnected) focused.focus({ preventScroll: true });
  }
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
  const { olderCursor: cursor } = state;
  const oldest = state.messages[0]?.id;
  state.loadingOlder = true;
  $('older').disabled = true;
  try {
    const page = await api.listMessages(session.id, { limit, before: cursor });
    // What is shown may have been replaced meanwhile (a whole branch for a
    // link, a refresh that started again): this page belongs above the old list.
    if (state.open?.session.id !== session.id || state.olderCursor !== cursor || state.messages[0]?.id !== oldest) return;
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

/**
 * Loads what it takes to show message `messageId`: older pages until it is
 * there, or, for a service with branches, the branch it is on (read
 * without switching when that is not the current one).
 */
async function bringIn(messageId, generation) {
  await featuresKnown;
  if (state.features.branches) {
    if (!state.messages.some((m) => m.id === messageId)) await showBranchOf(messageId);
    return;
  }
  while (!state.messages.some((m) => m.id === messageId) && state.olderCursor) {
    // An automatic load may be under way: wait for it rather than skip.
    if (state.loadingOlder) await new Promise((r) => setTimeout(r, 20));
    else await loadOlder(200);
    if (generation !== state.opening) return;
  }
}

/** Scrolls to a message and highlights it, loading what it takes to show it. */
async function reveal(messageId, generation) {
  try {
    await bringIn(messageId, generation);
    if (generation !== state.opening) return;
  } catch (e) {
    // 422: the service names no such message (not found, as below).
    if (e.status !== 404 && e.status !== 422) {
      showError(e);
      return;
    }
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
  if (state.view) {
    // The branch shown is not the current one: read it again.
    await refreshView(newest?.id);
    if (state.open?.session.id === id) listChanged(body);
    return;
  }
  const before = state.open?.session;
  state.open = { session: body, etag };
  if (newest?.id !== state.messages.at(-1)?.id || body.message_count !== before?.message_count
    || totalOf(body) !== totalOf(before)) await fetchNewMessages(id);
  if (state.open?.session.id !== id) return;
  renderChat();
  listChanged(body);
}

/**
 * Brings the messages shown up to date with the newest `limit` of the
 * current branch: what is new is appended; where the branch now goes
 * another way (switched, a message deleted), it is followed from the
 * newest message both share.
 */
async function fetchNewMessages(id, limit = MESSAGES_PAGE) {
  const page = await api.listMessages(id, { limit });
  if (state.open?.session.id !== id) return;
  const have = new Set(state.messages.map((m) => m.id));
  const atEnd = nearEnd();
  const newest = page.messages.reverse();
  const fresh = newest.filter((m) => !have.has(m.id)).length;
  // Every message has one path from the first: above a message both show, they agree.
  const shared = newest.length ? state.messages.findIndex((m) => m.id === newest[0].id) : -1;
  if (shared >= 0) {
    state.messages = [...state.messages.slice(0, shared), ...newest];
  } else {
    // More than a page arrived, or the branch parts above the page: start again from it.
    state.messages = newest;
    state.olderCursor = page.next_before;
  }
  renderMessages();
  if (atEnd) scrollToEnd();
  if (fresh) announce(`${plural(fresh, 'new message')} in this chat`);
}

/** Reads the open session and the newest `limit` messages of its current branch again (after a change to the tree). */
async function sync(limit = MESSAGES_PAGE) {
  const id = state.open.session.id;
  const { body, etag } = await api.getSession(id);
  if (state.open?.session.id !== id) return;
  delete body.messages;
  state.open = { session: body, etag };
  await fetchNewMessages(id, limit);
  if (state.open?.session.id === id) renderChat();
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
  const shown = state.messages.at(-1)?.id;
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
  const added = totalOf(after) - totalOf(before);
  if (added > 0) changes.push(`given ${plural(added, 'new message')}`);
  else if (added < 0) changes.push(`left with ${plural(-added, 'message')} fewer`);
  else if (state.messages.at(-1)?.id !== shown) changes.push('switched to another version');
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
      // On a branch that is not the current one, the message continues it (and makes it current).
      ...(state.view ? { parent_id: state.messages.at(-1)?.id ?? null } : {}),
    });
    state.pendingId = null;
    dropDraft(session.id);
    if (state.open?.session.id !== session.id) return;
    $('message').value = '';
    if (!state.messages.some((m) => m.id === message.id)) state.messages.push(message);
    countPosted(session, message);
    leaveView();
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
  const count = totalOf(session);
  const what = count
    ? `“${sessionName(session)}” and its ${plural(count, 'message')} will be deleted.`
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
  wireList(state);
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
  wireData({
    state,
    imported: () => loadSessions({ reset: true }),
    erased: async () => {
      clearDrafts();
      await navigate(UI);
      loadSessions({ reset: true });
    },
  });
  wireSearch(sessionUrl);
  wireBranches({
    state,
    render: renderChat,
    conflicted,
    listChanged,
    newMessageId,
    sessionUrl,
    sync,
    reopen: async (focus) => {
      const id = state.open?.session.id;
      if (!id) return;
      state.open = null;
      await openSession(id, null, focus);
    },
    reveal: (messageId) => bringIn(messageId, state.opening),
  });
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
  featuresKnown = api.features().then((features) => { state.features = features; }, showError);
  const opened = applyRoute();
  await featuresKnown;
  showFeatures();
  // A chat opened meanwhile gets the controls the service allows.
  if (state.open) renderMessages();
  await opened;
  document.body.dataset.ready = 'true';
}

start();
