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

const SVG = 'http://www.w3.org/2000/svg';

/** A small line drawing (`d`: its path), in the text's colour; decorative, hidden from screen readers. */
export function icon(className, d) {
  const svg = document.createElementNS(SVG, 'svg');
  for (const [k, v] of Object.entries({ class: className, viewBox: '0 0 16 16', 'aria-hidden': 'true', focusable: 'false' })) svg.setAttribute(k, v);
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', d);
  svg.append(path);
  return svg;
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

// Search's rules (src/search/: a term matches at the start of a word,
// case folded; a term that does not begin with a word character matches
// anywhere), so that what is highlighted is what the server counted.
const WORD = /[\p{L}\p{M}\p{N}]/u;
const ALONE = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;
// Simple case folding where it is not lowercasing (CaseFolding.txt, C and S).
const FOLD = new Map(Object.entries({
  '\u00B5': '\u03BC', '\u017F': 's', '\u0345': '\u03B9', '\u1FBE': '\u03B9', '\u03C2': '\u03C3',
  '\u03D0': '\u03B2', '\u03D1': '\u03B8', '\u03D5': '\u03C6', '\u03D6': '\u03C0', '\u03F0': '\u03BA',
  '\u03F1': '\u03C1', '\u03F5': '\u03B5', '\u1C80': '\u0432', '\u1C81': '\u0434', '\u1C82': '\u043E',
  '\u1C83': '\u0441', '\u1C84': '\u0442', '\u1C85': '\u0442', '\u1C86': '\u044A', '\u1C87': '\u0463',
  '\u1C88': '\uA64B', '\u1E9B': '\u1E61',
}));

/** One character folded to one character, as the server folds it. */
function fold(c) {
  const special = FOLD.get(c);
  if (special) return special;
  const lower = c.toLowerCase();
  // Only İ lowercases to two characters; simple folding keeps it.
  return [...lower].length === 1 ? lower : c;
}

const isWord = (c) => WORD.test(c);
const alone = (c) => ALONE.test(c);
const wordStartsAt = (chars, i) => isWord(chars[i])
  && (i === 0 || alone(chars[i]) || !isWord(chars[i - 1]) || alone(chars[i - 1]));

/**
 * `text` as nodes, with every match of a search term in a `<mark>`: by
 * the server's rules, so `kube` is marked in "Kubernetes", not in
 * "minikube".
 */
export function highlight(text, query) {
  const terms = query.split(/\s+/).filter(Boolean).map((t) => [...t].map(fold));
  if (!terms.length) return [text];
  const chars = [...text];
  const folded = chars.map(fold);
  const marked = new Array(chars.length).fill(false);
  for (const term of terms) {
    const anchored = isWord(term[0]);
    for (let i = 0; i + term.length <= folded.length; i++) {
      if (term.every((c, k) => folded[i + k] === c) && (!anchored || wordStartsAt(folded, i))) {
        for (let k = 0; k < term.length; k++) marked[i + k] = true;
      }
    }
  }
  const out = [];
  let run = '';
  let inMark = false;
  const flush = () => { if (run) out.push(inMark ? h('mark', {}, run) : run); run = ''; };
  chars.forEach((c, i) => {
    if (marked[i] !== inMark) { flush(); inMark = marked[i]; }
    run += c;
  });
  flush();
  return out;
}

/** Empties `el` and fills it with `children`. */
export function fill(el, children) {
  el.replaceChildren(...children);
}

const JSON_SPACE = ' \t\n\r';

/**
 * `text` indented two spaces a level when it is JSON, else null. Only the
 * layout changes: numbers, escapes, key order and repeated keys stay as
 * written (a parse and stringify would round big numbers and move keys
 * like "2" first), so what is shown is what the model wrote.
 */
export function prettyJson(text) {
  try {
    JSON.parse(text);
  } catch {
    return null;
  }
  let out = '';
  let depth = 0;
  const newline = () => `\n${'  '.repeat(depth)}`;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      out += text.slice(i, end + 1);
      i = end;
    } else if (c === '{' || c === '[') {
      let next = i + 1;
      while (JSON_SPACE.includes(text[next])) next++;
      if (text[next] === (c === '{' ? '}' : ']')) {
        out += c + text[next]; // empty: {} or []
        i = next;
      } else {
        depth++;
        out += c + newline();
      }
    } else if (c === '}' || c === ']') {
      depth--;
      out += newline() + c;
    } else if (c === ',') {
      out += `,${newline()}`;
    } else if (c === ':') {
      out += ': ';
    } else if (!JSON_SPACE.includes(c)) {
      out += c;
    }
  }
  return out;
}
