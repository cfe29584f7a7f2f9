// Search (GET /api/chat/search): the box in the bar, its results in place
// of the list of chats; a hit links to its chat at the message (on another
// branch too: branches.js shows the branch the message is on).

import * as api from './api.js';
import { fill, h, highlight, time } from './dom.js';
import { $, showError } from './notify.js';

const search = { q: '', token: null, running: 0 };
let sessionUrl; // (session id, message id) → the app's link to it

let searchTimer;

async function runSearch({ more = false } = {}) {
  const q = $('search').value.trim();
  clearTimeout(searchTimer);
  if (!q) {
    endSearch();
    return;
  }
  const running = ++search.running;
  try {
    const page = await api.search({ q, limit: 20, continuation_token: more ? search.token : undefined });
    if (running !== search.running) return;
    search.q = q;
    search.token = page.continuation_token;
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
    if (running === search.running) showError(e);
  }
}

export function endSearch() {
  search.running++;
  search.q = '';
  $('search').value = '';
  $('results').hidden = true;
  $('browse').hidden = false;
}

/** Wires the search box; `linkTo(sessionId, messageId)` is a hit's link. */
export function wireSearch(linkTo) {
  sessionUrl = linkTo;
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); runSearch(); });
  $('search').addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 300); });
  $('search').addEventListener('keydown', (e) => { if (e.key === 'Escape') endSearch(); });
  $('clear-search').addEventListener('click', () => { endSearch(); $('search').focus(); });
  $('more-results').addEventListener('click', () => runSearch({ more: true }));
}
