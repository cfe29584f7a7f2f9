// What the page tells the person: errors in one banner, and announcements
// for screen readers; with the small helpers every module of the app uses.

import * as api from './api.js';
import { fill, h } from './dom.js';

export const $ = (id) => document.getElementById(id);
/** The server's auth mode: "none" (the page names the user) or "easyauth". */
export const mode = document.querySelector('meta[name="auth-mode"]').content;
export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Says `text` to screen readers (the polite status region). */
export function announce(text) {
  $('status').textContent = '';
  requestAnimationFrame(() => { $('status').textContent = text; });
}

// One banner at a time: a new error replaces the last. One that says the
// service is unreachable (or failing) goes away by itself once it answers.
let banner = null;

/** Shows an ApiError's title and detail; `action` adds a button. */
export function showError(error, action) {
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

export function clearErrors() {
  $('errors').replaceChildren();
  banner = null;
}

api.observe((answered, status) => {
  if (answered && status < 500 && banner?.transient) clearErrors();
});
