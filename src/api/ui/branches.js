// Conversations as trees. A message that has other versions (`siblings`:
// it and the other messages with the same parent) shows "‹ 2 / 3 ›";
// switching makes the branch through the other version the current one
// (PUT current_message_id). Edit sends a user message again, changed, as a
// new version (POST with the edited message's `parent_id`), or saves it in
// place (PATCH: a correction, a redaction; an answer's Edit only saves);
// Another reply adds an assistant message beside one; Delete removes a
// message after asking (its replies move up to its parent, or go with it).
// A link to a message on a branch that is not the current one (a search
// hit) reads that branch without switching (GET ?message_id=) and says so
// in a bar.

import * as api from './api.js';
import { h, icon } from './dom.js';
import { $, announce, plural, showError } from './notify.js';

// From app.js: { state, render(), conflicted(what, retry), listChanged(session, options),
// newMessageId(), sessionUrl(id, messageId), reopen(focus), reveal(messageId) }.
let app;

const MAC = /Mac|iPhone|iPad/.test(navigator.platform);

// ---- the controls of a message --------------------------------------------

const button = (action, text, label) =>
  h('button', { type: 'button', dataset: { branch: action }, 'aria-label': label ?? null }, text);

/** A chevron toward the previous or the next version. */
const chevron = (toward) => icon('chevron', toward === 'prev' ? 'M10 3 5 8l5 5' : 'M6 3l5 5-5 5');

/** "‹ 2 / 3 ›" for a message with other versions, else null. */
function versions(m) {
  const ids = m.siblings;
  if (!ids || ids.length < 2 || !ids.includes(m.id)) return null;
  const at = ids.indexOf(m.id);
  return h('div', { class: 'versions', role: 'group', 'aria-label': `Version ${at + 1} of ${ids.length}` },
    h('button', { type: 'button', dataset: { branch: 'prev' }, 'aria-label': 'Previous version', disabled: at === 0 }, chevron('prev')),
    h('span', { class: 'count' }, `${at + 1} / ${ids.length}`),
    h('button', { type: 'button', dataset: { branch: 'next' }, 'aria-label': 'Next version', disabled: at === ids.length - 1 }, chevron('next')));
}

/** The branch controls of message `m`, for messageItem: `{ versions, lead, tail }`. */
export function controls(m) {
  const { state } = app;
  const writable = state.features.branches && state.open?.session.is_active;
  const lead = [];
  if (writable && m.message_type === 'user') lead.push(button('edit', 'Edit', 'Edit message'));
  if (writable && m.message_type === 'assistant') {
    lead.push(button('correct', 'Edit', 'Edit answer'), button('reply', 'Another reply'));
  }
  return { versions: versions(m), lead, tail: writable ? [button('delete', 'Delete', 'Delete message')] : [] };
}

/** What a message's item shows besides its own fields: it is drawn again when this changes. */
export function signature(m) {
  const { state } = app;
  return [m.edited_at ?? '', m.content, m.siblings?.join(' ') ?? '',
    Boolean(state.features.branches && state.open?.session.is_active)].join('\n');
}

function clicked(event) {
  const control = event.target.closest('button[data-branch]');
  const li = control?.closest('.message');
  const m = li && app.state.messages.find((x) => x.id === li.dataset.id);
  if (!m) return;
  const action = control.dataset.branch;
  if (action === 'edit' || action === 'reply' || action === 'correct') openEditor(li, m, action);
  else if (action === 'delete') askDelete(m);
  else if (action === 'prev' || action === 'next') {
    const ids = m.siblings;
    const target = ids[ids.indexOf(m.id) + (action === 'prev' ? -1 : 1)];
    if (target) switchTo(target, m.id, action);
  }
}

// ---- the branch shown -------------------------------------------------------

/** A session's count of every message (answers from before trees give only `message_count`). */
export const totalOf = (s) => s?.total_message_count ?? s?.message_count;

/**
 * Counts `message`, just posted, in `session`, whose current branch now
 * ends with it, `dropped` messages of the branch shown before it gone.
 */
export function countPosted(session, message, dropped = 0) {
  Object.assign(session, {
    message_count: session.message_count - dropped + 1,
    total_message_count: totalOf(session) + 1,
    last_message_at: message.created_at,
    updated_at: message.created_at,
  });
}

/** The branch shown is the current one again: the URL stops naming a message. */
export function leaveView() {
  const { state } = app;
  if (!state.view) return;
  state.view = null;
  if (state.open) history.replaceState(null, '', app.sessionUrl(state.open.session.id));
}

/** Shows the bar of a branch that is not the current one (or hides it). */
export function renderBar() {
  $('branch-bar').hidden = !app.state.view;
}

/**
 * Shows the branch through `messageId`, all of it, for a link to a message
 * that is not among those shown: as the current branch when it is on it,
 * else read without switching, with the bar. `knownLast`: the current
 * branch's last message id when the caller has just read it. Throws the
 * API's error (422: the session has no such message).
 */
export async function showBranchOf(messageId, knownLast) {
  const { state } = app;
  const id = state.open.session.id;
  const [branch, current] = await Promise.all([
    api.getBranch(id, messageId),
    // The current branch's newest message, unless it is shown or known already.
    state.view && knownLast === undefined ? api.getSession(id) : null,
  ]);
  if (state.open?.session.id !== id) return;
  const messages = branch.body.messages ?? [];
  delete branch.body.messages;
  const currentLast = knownLast
    ?? (current ? current.body.messages?.at(-1)?.id : state.messages.at(-1)?.id);
  if (messages.at(-1)?.id === currentLast) leaveView();
  else state.view = { anchor: messageId };
  state.open = { session: branch.body, etag: branch.etag };
  state.messages = messages;
  state.olderCursor = null;
  app.render();
}

/**
 * The chat changed elsewhere while a branch that is not the current one is
 * shown: read it again. `currentLast`: the current branch's last message id
 * in the version just read.
 */
export async function refreshView(currentLast) {
  const { state } = app;
  try {
    await showBranchOf(state.view.anchor, currentLast);
  } catch (e) {
    if (e.status !== 422) throw e;
    // The message the branch was read through is gone: show the current branch.
    leaveView();
    await app.reopen();
  }
}

/**
 * Takes a session answered with its whole current branch (a switch):
 * keeps as many older messages loaded as before, so the pager's cursor
 * still holds (the branches share every message above the switch).
 */
function takeBranch(body, etag) {
  const { state } = app;
  const all = body.messages;
  delete body.messages;
  const loadedFrom = state.view ? 0 : Math.max(0, state.open.session.message_count - state.messages.length);
  leaveView();
  state.open = { session: body, etag };
  if (all && all.length === body.message_count) {
    state.messages = all.slice(Math.min(loadedFrom, all.length));
    if (loadedFrom === 0) state.olderCursor = null;
    return true;
  }
  return false;
}

/** Where a message's item is on screen, to keep it there when the branch under it changes. */
const topOf = (id) => $('messages').querySelector(`.message[data-id="${CSS.escape(id)}"]`)?.getBoundingClientRect().top;
const itemOf = (id) => [...$('messages').children].find((li) => li.dataset.id === id);

async function switchTo(target, from, pressed) {
  const { state } = app;
  if (!state.open) return;
  const { session, etag } = state.open;
  const top = topOf(from);
  try {
    const { body, etag: newEtag } = await api.updateSession(session.id, { current_message_id: target }, etag);
    if (state.open?.session.id !== session.id) return;
    if (takeBranch(body, newEtag)) app.render();
    else await app.sync();
    if (!state.messages.some((m) => m.id === target)) await app.reveal(target);
    app.listChanged(state.open.session);
    const li = itemOf(target);
    if (!li) return;
    const now = li.getBoundingClientRect().top;
    if (top !== undefined) $('scroller').scrollTop += now - top;
    // Focus stays on the control pressed, or its other end once this one is the last.
    const again = li.querySelector(`[data-branch="${pressed}"]:not(:disabled)`)
      ?? li.querySelector('.versions button:not(:disabled)');
    (again ?? li).focus({ preventScroll: true });
    const ids = state.messages.find((x) => x.id === target)?.siblings;
    if (ids) announce(`Version ${ids.indexOf(target) + 1} of ${ids.length}`);
  } catch (e) {
    if (e.status === 412) await app.conflicted('switch to another version', () => switchTo(target, from, pressed));
    else showError(e);
  }
}

// ---- the inline editor: Edit, an answer's Edit, Another reply ------------------

let editor = null; // { li, m, kind, form, text, send, save, pendingId }
let editors = 0;

/**
 * The editor of each kind: its label, size, main button and what Ctrl+Enter
 * does. `edit` (a user message) also has Save, in place; `correct` (an
 * answer) only saves in place: there is no model to answer a changed question.
 */
const KINDS = {
  edit: { label: 'Edited message', rows: 4, submit: 'Save & send', keys: 'sends', alsoSave: true },
  correct: { label: 'Edited answer', rows: 4, submit: 'Save', keys: 'saves' },
  reply: { label: 'Another reply', rows: 3, submit: 'Post reply', keys: 'posts', shown: true },
};

/** Whether `li` holds the open editor (its item is kept as it is until it closes). */
export const editing = (li) => Boolean(editor && editor.li === li);

function openEditor(li, m, kind) {
  closeEditor();
  const n = ++editors;
  const k = KINDS[kind];
  const text = h('textarea', { id: `editor-${n}`, rows: k.rows, dir: 'auto', 'aria-describedby': `editor-keys-${n}` });
  text.value = kind === 'reply' ? '' : m.content;
  const send = h('button', { type: 'submit', class: 'primary' }, k.submit);
  const save = k.alsoSave ? h('button', { type: 'button', onclick: () => saveInPlace() }, 'Save') : null;
  const form = h('form', { class: 'inline-editor' },
    h('label', { for: text.id, class: k.shown ? 'editor-label' : 'visually-hidden' }, k.label),
    text,
    h('div', { class: 'editor-foot' },
      h('p', { id: `editor-keys-${n}`, class: 'keys' }, `${MAC ? '⌘' : 'Ctrl'}+Enter ${k.keys} · Esc cancels`),
      h('div', { class: 'editor-buttons' },
        h('button', { type: 'button', onclick: () => closeEditor({ restoreFocus: true }) }, 'Cancel'),
        save,
        send)));
  editor = { li, m, kind, form, text, send, save, pendingId: null };
  li.classList.add(kind === 'reply' ? 'replying' : 'editing');
  li.append(form);
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      closeEditor({ restoreFocus: true });
    }
  });
  // Changed text is another message: it gets a new id.
  text.addEventListener('input', () => { if (editor) editor.pendingId = null; });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (kind === 'correct') saveInPlace();
    else submitEditor();
  });
  text.focus();
  text.setSelectionRange(text.value.length, text.value.length);
  form.scrollIntoView({ block: 'nearest' });
}

/** Closes the editor, if one is open; `restoreFocus`: back to the button that opened it. */
export function closeEditor({ restoreFocus = false } = {}) {
  if (!editor) return;
  const { li, kind, form } = editor;
  editor = null;
  form.remove();
  li.classList.remove('editing', 'replying');
  if (restoreFocus) li.querySelector(`[data-branch="${kind}"]`)?.focus();
}

/** The editor's buttons, off while its request is under way. */
function busy(ed, on) {
  ed.send.disabled = on;
  if (ed.save) ed.save.disabled = on;
}

async function submitEditor() {
  const ed = editor;
  const { state } = app;
  const content = ed?.text.value ?? '';
  if (!ed || !state.open || !content.trim()) return;
  const { session } = state.open;
  ed.pendingId ??= app.newMessageId();
  busy(ed, true);
  try {
    const { body: message, etag } = await api.postMessage(session.id, {
      id: ed.pendingId,
      content,
      message_type: ed.kind === 'edit' ? 'user' : 'assistant',
      parent_id: ed.m.parent_id ?? null,
    });
    if (state.open?.session.id !== session.id) return;
    closeEditor();
    // The new message is the newest of its parent's children, and the end
    // of the branch now current.
    const siblings = [...(ed.m.siblings ?? [ed.m.id])];
    if (!siblings.includes(message.id)) siblings.push(message.id);
    message.siblings ??= siblings;
    const at = state.messages.findIndex((x) => x.id === ed.m.id);
    leaveView();
    state.open.etag = etag;
    if (at < 0) {
      await app.sync();
    } else {
      const dropped = state.messages.length - at;
      state.messages = [...state.messages.slice(0, at), message];
      countPosted(session, message, dropped);
      app.render();
    }
    app.listChanged(state.open.session, { moveToTop: true });
    const li = itemOf(message.id);
    li?.scrollIntoView({ block: 'nearest' });
    li?.focus({ preventScroll: true });
    announce(`${ed.kind === 'edit' ? 'Sent' : 'Posted'} as version ${message.siblings.length} of ${message.siblings.length}`);
  } catch (e) {
    // The text stays in the editor; sending again reuses the id, so nothing doubles.
    showError(e);
  } finally {
    busy(ed, false);
  }
}

/**
 * Save: the message changed in place (PATCH, guarded by the session's ETag),
 * no new version and nothing sent; it shows "edited". Refused because the
 * chat changed elsewhere (412), the text stays in the editor to try again.
 */
async function saveInPlace() {
  const ed = editor;
  const { state } = app;
  const content = ed?.text.value ?? '';
  if (!ed || !state.open || !content.trim()) return;
  if (content === ed.m.content) {
    closeEditor({ restoreFocus: true });
    return;
  }
  const { session, etag } = state.open;
  busy(ed, true);
  try {
    const { body: message, etag: newEtag } = await api.editMessage(session.id, ed.m.id, { content }, etag);
    if (state.open?.session.id !== session.id) return;
    closeEditor();
    state.open.etag = newEtag;
    const at = state.messages.findIndex((x) => x.id === message.id);
    // The answer to a PATCH is the message alone: its versions are as they were.
    if (at >= 0) state.messages[at] = { ...message, siblings: message.siblings ?? state.messages[at].siblings };
    app.render();
    itemOf(message.id)?.focus({ preventScroll: true });
    announce('Message saved');
  } catch (e) {
    if (e.status === 412) await app.conflicted('edit', saveInPlace);
    else showError(e);
  } finally {
    busy(ed, false);
  }
}

// ---- delete -------------------------------------------------------------------

let deleting = null; // the id of the message the dialog asks about

function askDelete(m) {
  deleting = m.id;
  const text = m.content.trim();
  const quote = text ? ` “${text.length > 80 ? `${text.slice(0, 80)}…` : text}”` : '';
  $('delete-message-text').textContent = `The ${m.message_type} message${quote} will be deleted. `
    + 'Replies to it stay, following the message before it, unless you delete them too. This cannot be undone.';
  $('delete-message-subtree').checked = false;
  $('delete-message-dialog').returnValue = '';
  $('delete-message-dialog').showModal();
}

async function confirmDelete() {
  const { state } = app;
  const id = deleting;
  deleting = null;
  const confirmed = $('delete-message-dialog').returnValue === 'delete';
  if (!confirmed || !id || !state.open) {
    // Back to the Delete button that opened the dialog.
    itemOf(id ?? '')?.querySelector('[data-branch="delete"]')?.focus();
    return;
  }
  await deleteMessage(id, $('delete-message-subtree').checked);
}

async function deleteMessage(id, subtree) {
  const { state } = app;
  const { session, etag } = state.open;
  const at = state.messages.findIndex((m) => m.id === id);
  try {
    const newEtag = await api.deleteMessage(session.id, id, etag, subtree);
    if (state.open?.session.id !== session.id) return;
    state.open.etag = newEtag;
    if (state.view) {
      // Read the branch shown again, through a message still there.
      const anchor = subtree || state.messages.at(-1)?.id === id ? state.messages[at - 1]?.id : state.messages.at(-1)?.id;
      if (anchor) await showBranchOf(anchor);
      else {
        leaveView();
        await app.reopen();
      }
    } else {
      // What follows it on the branch comes again from the service: a page
      // reaching back to the message before it.
      const after = at < 0 ? 0 : state.messages.length - at;
      if (at >= 0) state.messages = state.messages.slice(0, at);
      await app.sync(Math.min(200, Math.max(50, after + 1)));
    }
    const next = state.messages[Math.min(Math.max(at, 0), state.messages.length - 1)];
    const li = next && itemOf(next.id);
    if (li) li.focus();
    else $(state.open?.session.is_active ? 'message' : 'chat-title').focus();
    announce(subtree ? 'Message and its replies deleted' : 'Message deleted');
  } catch (e) {
    if (e.status === 412) await app.conflicted('deletion of a message', () => deleteMessage(id, subtree));
    else showError(e);
  }
}

// ---- start --------------------------------------------------------------------

/** Wires the controls; `hooks` are app.js's state and what it does for them. */
export function wireBranches(hooks) {
  app = hooks;
  $('messages').addEventListener('click', clicked);
  $('delete-message-dialog').addEventListener('close', confirmDelete);
  $('branch-current').addEventListener('click', async () => {
    leaveView();
    await app.reopen('heading');
  });
}

/** "3 messages" of the branch shown, and how many all versions hold when that is more. */
export function counted(session) {
  const total = totalOf(session);
  return total > session.message_count
    ? `${plural(session.message_count, 'message')} (${total} in all versions)`
    : plural(session.message_count, 'message');
}
