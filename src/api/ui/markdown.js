// Markdown (CommonMark and GitHub's extensions: fenced code, tables, task
// lists, strikethrough, autolinks) turned into DOM nodes. The vendored
// `marked` only tokenises (vendor/README.md says which version, whence
// and how to update it); this file builds every node itself with
// createElement and text nodes, so message text never becomes HTML: raw
// HTML in a message stays text, a link is made only for http(s) and
// mailto, and an image is shown as a link to it, never fetched (opening a
// chat must not call out to anyone).

import { Lexer } from './vendor/marked.esm.js';
import { h } from './dom.js';

// breaks: a single newline is a line break, as people write in a chat box.
const OPTIONS = { gfm: true, breaks: true };

const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

/** The URL when it is absolute and http(s) or mailto; null otherwise. */
export function safeUrl(href) {
  try {
    const url = new URL(href);
    return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

// The character references a person is likely to type; marked leaves
// references in text for an HTML renderer to decode, and decoding all
// 2,000 HTML names would need a table bigger than the parser. Unknown
// names stay as written.
const ENTITIES = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00A0', copy: '©', reg: '®',
  trade: '™', hellip: '…', mdash: '—', ndash: '–', laquo: '«', raquo: '»', lsquo: '‘',
  rsquo: '’', ldquo: '“', rdquo: '”', bull: '•', middot: '·', deg: '°', times: '×',
  divide: '÷', plusmn: '±', euro: '€', pound: '£', yen: '¥', cent: '¢', sect: '§',
  para: '¶', larr: '←', rarr: '→', uarr: '↑', darr: '↓', harr: '↔', le: '≤', ge: '≥',
  ne: '≠', infin: '∞', check: '✓', shy: '\u00AD', zwj: '\u200D', zwnj: '\u200C',
};

function decode(text) {
  return text.replace(/&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([A-Za-z][A-Za-z0-9]{1,31}));/g, (whole, dec, hex, name) => {
    if (name) return ENTITIES[name] ?? whole;
    const code = dec ? Number(dec) : parseInt(hex, 16);
    // CommonMark: 0 and invalid code points become U+FFFD.
    return code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff) ? '\uFFFD' : String.fromCodePoint(code);
  });
}

/** The nodes of `markdown`, safe whatever it holds. */
export function render(markdown) {
  let tokens;
  try {
    tokens = new Lexer(OPTIONS).lex(markdown);
  } catch {
    // The tokeniser never should throw; if it does, the text is still shown.
    return [h('p', { class: 'raw', dir: 'auto' }, markdown)];
  }
  // The chat's title is an h2: a message's highest heading becomes an h3,
  // the others keep their distance from it, so no level is skipped.
  const depths = tokens.filter((t) => t.type === 'heading').map((t) => t.depth);
  headingShift = depths.length ? 3 - Math.min(...depths) : 0;
  return blocks(tokens);
}

let headingShift = 0;

function blocks(tokens) {
  return tokens.map(block).filter(Boolean);
}

function block(t) {
  switch (t.type) {
    case 'space':
    case 'def':
      return null;
    case 'paragraph':
      return h('p', { dir: 'auto' }, inline(t.tokens));
    case 'text':
      // Text directly in a tight list item.
      return t.tokens ? h('span', {}, inline(t.tokens)) : decode(t.text);
    case 'heading':
      return h(`h${Math.min(Math.max(t.depth + headingShift, 3), 6)}`, { dir: 'auto' }, inline(t.tokens));
    case 'code':
      return codeBlock(t.text, (t.lang || '').split(/\s/)[0]);
    case 'blockquote':
      return h('blockquote', { dir: 'auto' }, blocks(t.tokens));
    case 'list':
      return h(t.ordered ? 'ol' : 'ul', {
        start: t.ordered && t.start !== 1 && t.start !== '' ? t.start : null,
        class: t.items.some((i) => i.task) ? 'tasks' : null,
      }, t.items.map(listItem));
    case 'table':
      return table(t);
    case 'hr':
      return h('hr');
    case 'html':
      // Raw HTML is shown as what it is: text.
      return h('p', { class: 'raw', dir: 'auto' }, t.text.replace(/\n+$/, ''));
    default:
      return t.raw ? h('p', { dir: 'auto' }, t.raw) : null;
  }
}

function listItem(item) {
  const children = item.tokens.map((t) => (t.type === 'checkbox' ? taskBox(t.checked) : block(t)));
  return h('li', { dir: 'auto', class: item.task ? 'task' : null }, children);
}

function taskBox(checked) {
  // Read-only: a picture of a box with its state as its name, so it is not
  // an unlabelled control.
  return h('span', { class: 'task-box', role: 'img', 'aria-label': checked ? 'done' : 'not done' }, checked ? '☑' : '☐');
}

function table(t) {
  const cell = (tag, c) => h(tag, { dir: 'auto', class: c.align ? `align-${c.align}` : null }, inline(c.tokens));
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Table' },
    h('table', {},
      h('thead', {}, h('tr', {}, t.header.map((c) => cell('th', c)))),
      t.rows.length ? h('tbody', {}, t.rows.map((row) => h('tr', {}, row.map((c) => cell('td', c))))) : null));
}

/**
 * A code block with its language (or `label`) and a Copy button (`copy`:
 * its text, `copyName`: its name when the text alone would not say what
 * it copies); `dir` is `ltr` for code, `auto` for text in any language (a
 * tool's plain answer).
 */
export function codeBlock(text, lang, { dir = 'ltr', label, copy = 'Copy code', copyName } = {}) {
  return h('div', { class: 'code-block' },
    h('div', { class: 'code-head' },
      h('span', { class: 'lang' }, label ?? (lang || 'code')),
      h('button', { type: 'button', class: 'copy', dataset: { copy: 'code' }, 'aria-label': copyName }, copy)),
    h('pre', { dir, tabindex: '0' }, h('code', { class: lang ? `language-${lang}` : null }, text)));
}

function inline(tokens = []) {
  return tokens.map(span).filter((n) => n !== null && n !== '');
}

function span(t) {
  switch (t.type) {
    case 'text':
      return t.tokens ? h('span', {}, inline(t.tokens)) : decode(t.text);
    case 'escape':
      return t.text;
    case 'strong':
      return h('strong', {}, inline(t.tokens));
    case 'em':
      return h('em', {}, inline(t.tokens));
    case 'del':
      return h('del', {}, inline(t.tokens));
    case 'codespan':
      return h('code', {}, t.text);
    case 'br':
      return h('br');
    case 'link':
      return link(t.href, t.title, inline(t.tokens));
    case 'image':
      return image(t);
    case 'html':
      return t.text;
    case 'checkbox':
      return taskBox(t.checked);
    default:
      return t.raw ?? '';
  }
}

function link(href, title, children) {
  const url = safeUrl(href);
  // A link to anything else (javascript:, data:, a relative path) is just
  // its text.
  if (!url) return h('span', { class: 'unsafe-link', title: href }, children);
  return h('a', { href: url, title: title || null, rel: 'noopener noreferrer nofollow', target: '_blank' }, children);
}

function image(t) {
  const alt = decode(t.text || '');
  const label = `Image: ${alt || t.href}`;
  const url = safeUrl(t.href);
  if (!url) return h('span', { class: 'image-link' }, label);
  return h('a', { href: url, class: 'image-link', title: t.title || null, rel: 'noopener noreferrer nofollow', target: '_blank' }, label);
}
