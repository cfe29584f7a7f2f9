// Building the page. Whatever a person or the service wrote goes in as
// text (text nodes, textContent), never as HTML: the page's CSP requires
// Trusted Types, so an HTML sink would throw rather than run anything.

/**
 * An element: `h('li', { class: 'x', dataset: { id } }, 'text', child)`.
 * Strings among the children become text nodes; `on…` props are listeners.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const sameDay = (a, b) => a.toDateString() === b.toDateString();
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A `<time>`: the time alone today, else the date (`long`: date and time). */
export function time(iso, long = false) {
  if (!iso) return null;
  const date = new Date(iso);
  const text = long ? full.format(date) : sameDay(date, new Date()) ? timeOnly.format(date) : dateOnly.format(date);
  return h('time', { datetime: iso, title: full.format(date) }, text);
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `text` as nodes, with each occurrence of a search term in a `<mark>`. */
export function marked(text, query) {
  const terms = query.split(/\s+/).filter(Boolean).map(escapeRegExp);
  if (!terms.length) return [text];
  const parts = text.split(new RegExp(`(${terms.join('|')})`, 'giu'));
  // split() with one capture group: odd parts are the matches.
  return parts.map((part, i) => (i % 2 ? h('mark', {}, part) : part)).filter((p) => p !== '');
}

/** Empties `el` and fills it with `children`. */
export function fill(el, children) {
  el.replaceChildren(...children);
}
