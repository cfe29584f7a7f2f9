// The user's data as a whole: export (one chat or everything), import
// (ChatGPT's conversations.json or this service's export) and erase, each
// through its dialog.

import * as api from './api.js';
import { fill, h } from './dom.js';
import { $, mode, plural, showError } from './notify.js';

// From app.js: { state, imported(), erased() }.
let app;

// ---- export -------------------------------------------------------------

function askExport() {
  const { exportSession, exportAll } = app.state.features;
  const canSession = exportSession && Boolean(app.state.open);
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
    const response = all ? await api.exportAll() : await api.exportSession(app.state.open.session.id, format);
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
    app.imported();
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
  return app.state.sessions.find((s) => s.user_id)?.user_id ?? null;
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
    await app.erased();
  } catch (e) {
    $('erase-start').disabled = false;
    fill($('erase-result'), [h('p', { class: 'failed' }, h('strong', {}, `${e.title}. `), e.detail || '')]);
  }
}

/** Wires the dialogs; `hooks` are app.js's state and what to do after an import or an erase. */
export function wireData(hooks) {
  app = hooks;
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
}
