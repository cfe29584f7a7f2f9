// How one message is drawn: its head, its text as Markdown in a bubble, and
// tool calling (an assistant message's `tool_calls`, a `tool` message's
// answer) as compact blocks, collapsed until opened; a message that is only
// that has no bubble. Under it, its row of actions.

import { h, icon, prettyJson, time } from './dom.js';
import { codeBlock, render as markdown } from './markdown.js';

/**
 * A message's item. `known` are the messages shown (a tool message is named
 * after the call it answers when that is among them); `controls`, from
 * branches.js: `{ versions, lead, tail }` (the version switcher, buttons
 * before Copy, buttons after it), or null.
 */
export function messageItem(m, known, controls) {
  const calls = m.tool_calls ?? [];
  const text = m.content.trim() !== '';
  const isTool = m.message_type === 'tool';
  const bubble = text && !isTool;
  // A tool message whose function is not known yet (its call is on an older page).
  const dataset = isTool && !answeredName(m, known) ? { id: m.id, unnamed: 'true' } : { id: m.id };
  const actions = [
    ...(controls?.lead ?? []),
    bubble ? h('button', { type: 'button', class: 'copy', dataset: { copy: 'message' }, 'aria-label': 'Copy message' }, 'Copy') : null,
    ...(controls?.tail ?? []),
  ].filter(Boolean);
  const row = controls?.versions || actions.length
    ? h('div', { class: 'message-actions' }, controls?.versions ?? null, actions) : null;
  return h('li', { class: `message ${m.message_type}${bubble ? '' : ' tool-only'}`, dataset, tabindex: '-1' },
    h('div', { class: 'message-head' }, h('span', { class: 'role' }, m.message_type), time(m.created_at, true),
      m.edited_at ? h('span', { class: 'edited', title: `Edited ${new Date(m.edited_at).toLocaleString()}` }, 'edited') : null),
    bubble ? h('div', { class: 'content', dir: 'auto' }, markdown(m.content)) : null,
    calls.map(toolCall),
    isTool ? toolResult(m, known) : null,
    row);
}

/** A wrench, drawn (no emoji font needed). */
const wrench = () => icon('tool-icon', 'M8.24 7.76 3 13M13.59 4.67A3.2 3.2 0 1 1 11.33 2.41');

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
export function answeredName(m, known) {
  if (m.name) return m.name;
  const call = known.flatMap((x) => x.tool_calls ?? []).find((c) => c.id === m.tool_call_id);
  return call?.function.name ?? null;
}

function toolResult(m, known) {
  const name = answeredName(m, known);
  return toolBlock('result', name ? ['Result of ', h('code', {}, name)] : 'Tool result',
    payload(m.content, ['Answer to call ', h('span', { class: 'call-id' }, m.tool_call_id)], 'result'));
}
