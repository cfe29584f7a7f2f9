// Drafts: what was typed in a chat and not sent, per user and chat, kept
// across chats and reloads (in the browser's storage only).

import { $, mode } from './notify.js';

const DRAFT_KEY = 'chat-sessions.draft';

const drafts = new Map();
const draftKey = (id) => `${DRAFT_KEY}.${mode === 'easyauth' ? '' : $('user').value.trim()}.${id}`;

/** Keeps `text` as the draft of chat `id` (none when empty). */
export function saveDraft(id, text) {
  const key = draftKey(id);
  drafts.set(key, text);
  try {
    if (text) localStorage.setItem(key, text);
    else localStorage.removeItem(key);
  } catch {
    // Private mode: kept for this page only.
  }
}

export function draftOf(id) {
  const key = draftKey(id);
  try {
    return localStorage.getItem(key) ?? drafts.get(key) ?? '';
  } catch {
    return drafts.get(key) ?? '';
  }
}

export function dropDraft(id) {
  const key = draftKey(id);
  drafts.delete(key);
  try {
    localStorage.removeItem(key);
  } catch {
    // Nothing stored.
  }
}

/** Forgets every draft kept for this page (after an erase). */
export function clearDrafts() {
  drafts.clear();
}
