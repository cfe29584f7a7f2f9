// Conversations as trees in the web app: Edit sends a user message again as
// a new version, Another reply adds an assistant message beside one, the
// "‹ 2 / 3 ›" control switches between versions (PUT current_message_id),
// Save changes a message in place (PATCH), Delete asks first, and a search
// hit on a branch that is not the current one opens that branch without
// switching.
//
// With SCREENSHOTS set (a directory; relative to the repository), the
// version control is also saved as PNGs there, light and dark:
//
//   SCREENSHOTS=target/screenshots cargo test --locked --test it -- browser

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { call, launch, newPage, newUser, openApp, seedSession, shownMessages } from './lib.mjs';

let browser;
before(async () => {
  const { body: doc } = await call('GET', '/api/openapi.json');
  assert.ok(doc.paths['/api/chat/sessions/{session_id}/messages/{message_id}']?.delete,
    'the service does not offer DELETE /api/chat/sessions/{session_id}/messages/{message_id}');
  browser = await launch();
});
after(async () => { await browser?.close(); });

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = process.env.SCREENSHOTS ? new URL(process.env.SCREENSHOTS.replace(/\/?$/, '/'), `file://${ROOT}`) : null;

async function screenshot(target, name) {
  if (!SHOTS) return;
  await mkdir(SHOTS, { recursive: true });
  const path = fileURLToPath(new URL(`${name}.png`, SHOTS));
  await target.screenshot({ path });
  console.log(`screenshot: ${path}`);
}

const button = (scope, name) => scope.getByRole('button', { name, exact: true });
const item = (page, text) => page.locator('#messages > .message', { hasText: text });

/** The session as the API reads it now (its current branch). */
async function current(user, id) {
  const { status, body } = await call('GET', `/api/chat/sessions/${id}`, { user });
  assert.equal(status, 200);
  return body;
}

/** Posts a message through the API (`parent_id` as given); returns it. */
async function post(user, id, message) {
  const { status, body } = await call('POST', `/api/chat/sessions/${id}/messages`, { user, body: message });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

/** What the version control of `li` says, and which of its buttons work. */
async function versions(li) {
  const group = li.locator('.versions');
  return {
    label: await group.getAttribute('aria-label'),
    text: (await group.locator('.count').innerText()).trim(),
    previous: await button(group, 'Previous version').isEnabled(),
    next: await button(group, 'Next version').isEnabled(),
  };
}

const focused = (page) => page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.textContent);

describe('versions of a message', () => {
  test('Edit sends the question again as a new version: "2 / 2"; Previous switches back to the first and its answer', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, {
      name: 'Capitals',
      messages: [['user', 'What is the capital of Australia?'], ['assistant', 'Sydney.']],
    });
    await openApp(page, user, `sessions/${session.id}`);
    const question = item(page, 'What is the capital of Australia?');
    await question.waitFor();
    assert.equal(await page.locator('#messages .versions').count(), 0, 'no versions yet: no control');

    // Esc cancels: nothing sent, focus back on Edit.
    await button(question, 'Edit message').click();
    const box = page.getByRole('textbox', { name: 'Edited message' });
    assert.equal(await box.inputValue(), 'What is the capital of Australia?');
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'TEXTAREA');
    await box.press('Escape');
    assert.equal(await box.count(), 0);
    assert.equal(await focused(page), 'Edit message');
    assert.deepEqual(await shownMessages(page), ['What is the capital of Australia?', 'Sydney.']);

    // Save & send (Ctrl+Enter): a new first message, shown alone, "2 / 2".
    await page.keyboard.press('Enter');
    await box.fill('What is the capital of Australia? <b>Really</b>');
    await screenshot(page, 'branches-editor');
    await box.press('Control+Enter');
    const edited = item(page, 'Really');
    await edited.waitFor();
    assert.deepEqual(await shownMessages(page), ['What is the capital of Australia? <b>Really</b>']);
    assert.equal(await page.locator('#messages b').count(), 0, 'the text is text');
    assert.deepEqual(await versions(edited), { label: 'Version 2 of 2', text: '2 / 2', previous: true, next: false });
    assert.match(await page.locator('#chat-meta').innerText(), /1 message \(3 in all versions\)/);
    let now = await current(user, session.id);
    assert.equal(now.message_count, 1);
    assert.equal(now.total_message_count, 3);
    assert.equal(now.messages[0].parent_id, null);
    assert.equal(now.messages[0].content, 'What is the capital of Australia? <b>Really</b>');
    await screenshot(page, 'branches-edited');

    // Previous: the first version and the answer under it; focus stays on
    // the control (on Next, Previous being the end now).
    await button(edited, 'Previous version').click();
    const original = item(page, 'What is the capital of Australia?').first();
    await page.locator('#messages > .message', { hasText: 'Sydney.' }).waitFor();
    assert.deepEqual(await shownMessages(page), ['What is the capital of Australia?', 'Sydney.']);
    assert.deepEqual(await versions(original), { label: 'Version 1 of 2', text: '1 / 2', previous: false, next: true });
    assert.equal(await focused(page), 'Next version');
    now = await current(user, session.id);
    assert.deepEqual(now.messages.map((m) => m.content), ['What is the capital of Australia?', 'Sydney.']);
    await screenshot(page, 'branches-control');
    await screenshot(original, 'branches-control-message');
    await page.emulateMedia({ colorScheme: 'dark' });
    await screenshot(page, 'branches-control-dark');
    await screenshot(original, 'branches-control-message-dark');
    await page.emulateMedia({ colorScheme: 'light' });

    // From the keyboard: Enter on Next goes to version 2 again.
    await page.keyboard.press('Enter');
    await page.locator('#messages > .message', { hasText: 'Sydney.' }).waitFor({ state: 'detached' });
    assert.deepEqual(await shownMessages(page), ['What is the capital of Australia? <b>Really</b>']);
    assert.equal(await focused(page), 'Previous version');
  });

  test('Another reply puts a second answer beside an assistant message', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, {
      name: 'Colours',
      messages: [['user', 'Name a colour'], ['assistant', 'Blue']],
    });
    await openApp(page, user, `sessions/${session.id}`);
    const answer = item(page, 'Blue');
    await answer.waitFor();
    assert.equal(await button(item(page, 'Name a colour'), 'Another reply').count(), 0, 'not on a user message');
    await button(answer, 'Another reply').click();
    const box = page.getByRole('textbox', { name: 'Another reply' });
    assert.equal(await box.inputValue(), '');
    await box.fill('**Green**');
    await button(page.locator('.inline-editor'), 'Post reply').click();
    const green = item(page, 'Green');
    await green.waitFor();
    assert.deepEqual(await shownMessages(page), ['Name a colour', 'Green']);
    assert.equal(await green.locator('strong').textContent(), 'Green', 'Markdown, as every message');
    assert.deepEqual(await versions(green), { label: 'Version 2 of 2', text: '2 / 2', previous: true, next: false });
    const now = await current(user, session.id);
    const [q, a] = now.messages;
    assert.equal(a.message_type, 'assistant');
    assert.equal(a.parent_id, q.id);
    assert.equal(a.siblings.length, 2);

    await button(green, 'Previous version').click();
    await item(page, 'Blue').waitFor();
    assert.deepEqual(await shownMessages(page), ['Name a colour', 'Blue']);
    // A message sent now follows the version shown.
    await page.getByLabel('Message', { exact: true }).fill('And another?');
    await page.getByLabel('Message', { exact: true }).press('Enter');
    await item(page, 'And another?').waitFor();
    const after = await current(user, session.id);
    assert.deepEqual(after.messages.map((m) => m.content), ['Name a colour', 'Blue', 'And another?']);
  });

  test('a switch refused because the chat changed elsewhere (412) says so and shows the chat as it is', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, { name: 'Elsewhere', messages: [['user', 'Q'], ['assistant', 'A1']] });
    const { messages: [q] } = await current(user, session.id);
    await post(user, session.id, { message_type: 'assistant', content: 'A2', parent_id: q.id });
    await openApp(page, user, `sessions/${session.id}`);
    const a2 = item(page, 'A2');
    await a2.waitFor();
    // Another tab adds a third answer: this page's ETag is stale.
    await post(user, session.id, { message_type: 'assistant', content: 'A3', parent_id: q.id });
    await button(a2, 'Previous version').click();
    await page.locator('#errors', { hasText: 'This chat was changed elsewhere.' }).waitFor();
    assert.match(await page.locator('#errors').innerText(), /given 1 new message/);
    const a3 = item(page, 'A3');
    await a3.waitFor();
    assert.equal((await versions(a3)).text, '3 / 3');
    await button(page.locator('#errors'), 'Try again').click();
    await item(page, 'A1').waitFor();
    assert.equal((await current(user, session.id)).messages[1].content, 'A1');
  });
});

describe('editing in place', () => {
  test('Save changes a message where it is (no new version, "edited", the answer stays); an answer\'s Edit only saves; a 412 keeps the text to try again', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, {
      name: 'Login',
      messages: [['user', 'My password is hunter2, why does login fail?'], ['assistant', 'Check the caps lock.']],
    });
    await openApp(page, user, `sessions/${session.id}`);
    const question = item(page, 'hunter2');
    await question.waitFor();

    // A pasted password: Edit, then Save (not Save & send).
    await button(question, 'Edit message').click();
    const box = page.getByRole('textbox', { name: 'Edited message' });
    await box.fill('My password is [redacted], why does login fail?');
    await button(page.locator('.inline-editor'), 'Save').click();
    const redacted = item(page, '[redacted]');
    await redacted.waitFor();
    assert.deepEqual(await shownMessages(page), ['My password is [redacted], why does login fail?', 'Check the caps lock.']);
    assert.equal(await redacted.locator('.edited').innerText(), 'edited');
    assert.equal(await page.locator('#messages .versions').count(), 0, 'no new version');
    assert.equal(await page.locator('#messages .inline-editor').count(), 0, 'the editor closed');
    let now = await current(user, session.id);
    assert.equal(now.total_message_count, 2);
    assert.equal(now.messages[0].content, 'My password is [redacted], why does login fail?');
    assert.ok(now.messages[0].edited_at, 'edited_at is set');
    assert.equal(now.messages[1].parent_id, now.messages[0].id, 'the answer stays under it');

    // An answer's Edit has Save only (Ctrl+Enter saves): there is no model to send to.
    const answer = item(page, 'Check the caps lock.');
    await button(answer, 'Edit answer').click();
    const answerBox = page.getByRole('textbox', { name: 'Edited answer' });
    assert.equal(await answerBox.inputValue(), 'Check the caps lock.');
    assert.equal(await button(page.locator('.inline-editor'), 'Save & send').count(), 0);
    await screenshot(page, 'branches-answer-editor');
    await answerBox.fill('Check the Caps Lock key.');
    await answerBox.press('Control+Enter');
    await item(page, 'Caps Lock key.').waitFor();
    now = await current(user, session.id);
    assert.deepEqual(now.messages.map((m) => m.content),
      ['My password is [redacted], why does login fail?', 'Check the Caps Lock key.']);

    // Renamed in another tab meanwhile: 412 in plain words, the text kept; Try again saves it.
    await button(item(page, 'Caps Lock key.'), 'Edit answer').click();
    await answerBox.fill('Check the Caps Lock key, then the keyboard layout.');
    await call('PUT', `/api/chat/sessions/${session.id}`, { user, body: { session_name: 'Login trouble' } });
    await answerBox.press('Control+Enter');
    await page.locator('#errors', { hasText: 'This chat was changed elsewhere.' }).waitFor();
    assert.match(await page.locator('#errors').innerText(), /renamed to “Login trouble”.*Your edit was not saved/s);
    assert.equal(await answerBox.inputValue(), 'Check the Caps Lock key, then the keyboard layout.');
    assert.equal((await current(user, session.id)).messages[1].content, 'Check the Caps Lock key.');
    await button(page.locator('#errors'), 'Try again').click();
    await item(page, 'keyboard layout').waitFor();
    assert.equal((await current(user, session.id)).messages[1].content, 'Check the Caps Lock key, then the keyboard layout.');
  });
});

describe('deleting a message', () => {
  test('asks first (Esc and Cancel keep it); the message goes and its replies follow its parent; with its replies, all go', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, {
      name: 'Deletions',
      messages: [['user', 'first question'], ['assistant', 'first answer'], ['user', 'second question'], ['assistant', 'second answer']],
    });
    await openApp(page, user, `sessions/${session.id}`);
    const answer = item(page, 'first answer');
    await answer.waitFor();

    const dialog = page.getByRole('dialog', { name: 'Delete this message?' });
    await button(answer, 'Delete message').click();
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /The assistant message “first answer” will be deleted/);
    assert.equal(await focused(page), 'Cancel', 'focus starts on Cancel');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await focused(page), 'Delete message', 'focus back on the Delete that opened it');
    await page.keyboard.press('Enter');
    await dialog.waitFor();
    await button(dialog, 'Cancel').click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await shownMessages(page)).length, 4);

    await button(answer, 'Delete message').click();
    await button(dialog, 'Delete message').click();
    await answer.waitFor({ state: 'detached' });
    assert.deepEqual(await shownMessages(page), ['first question', 'second question', 'second answer']);
    let now = await current(user, session.id);
    assert.deepEqual(now.messages.map((m) => m.content), ['first question', 'second question', 'second answer']);
    assert.equal(now.messages[1].parent_id, now.messages[0].id, 'the reply follows the parent');
    assert.match(await page.locator('#chat-meta').innerText(), /^3 messages/);

    // With its replies: the second question and its answer go.
    await button(item(page, 'second question'), 'Delete message').click();
    await dialog.getByRole('checkbox', { name: 'Delete the replies under it too' }).check();
    await button(dialog, 'Delete message').click();
    await item(page, 'second answer').waitFor({ state: 'detached' });
    assert.deepEqual(await shownMessages(page), ['first question']);
    now = await current(user, session.id);
    assert.equal(now.message_count, 1);
    assert.equal(now.total_message_count, 1);
    assert.equal(await page.evaluate(() => document.activeElement.dataset.id), now.messages[0].id,
      'focus on the message before the one deleted');
  });
});

describe('search and branches', () => {
  test('a link to a message the chat does not hold says so', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, { name: 'Short', messages: [['user', 'only this']] });
    await openApp(page, user, `sessions/${session.id}?message=msg_not_here`);
    await page.locator('#errors', { hasText: 'Message not found' }).waitFor();
    assert.deepEqual(await shownMessages(page), ['only this']);
    assert.ok(await page.locator('#branch-bar').isHidden());
  });

  test('a hit on another branch opens that branch, without switching; sending there continues it', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const session = await seedSession(user, {
      name: 'Trip to Lisbon',
      messages: [['user', 'How do I get to Belém?'], ['assistant', 'Tram 15E from Praça da Figueira.']],
    });
    const { messages: [q] } = await current(user, session.id);
    await post(user, session.id, { message_type: 'assistant', content: 'The train from Cais do Sodré.', parent_id: q.id });

    await openApp(page, user);
    await page.getByRole('searchbox', { name: 'Search' }).fill('figueira');
    const hit = page.locator('#results-list a').first();
    await hit.waitFor();
    await hit.click();
    const shown = page.locator('#messages .message.hit');
    await shown.waitFor();
    assert.match(await shown.innerText(), /Tram 15E/);
    assert.deepEqual(await shownMessages(page), ['How do I get to Belém?', 'Tram 15E from Praça da Figueira.']);
    assert.deepEqual(await versions(shown), { label: 'Version 1 of 2', text: '1 / 2', previous: false, next: true });
    const bar = page.locator('#branch-bar');
    assert.ok(await bar.isVisible(), 'the bar says this is not the current version');
    assert.match(await bar.innerText(), /another version/);
    assert.equal((await current(user, session.id)).messages[1].content, 'The train from Cais do Sodré.', 'nothing switched');
    await screenshot(page, 'branches-search-hit');

    // Back to the current version.
    await button(bar, 'Show the current version').click();
    await item(page, 'Cais do Sodré').waitFor();
    assert.ok(await bar.isHidden());
    assert.ok(!page.url().includes('?message='));

    // The hit again; a message sent there continues that branch and makes it current.
    await hit.click();
    await item(page, 'Tram 15E').waitFor();
    await bar.waitFor();
    await page.getByLabel('Message', { exact: true }).fill('Thanks, the tram it is.');
    await page.getByLabel('Message', { exact: true }).press('Enter');
    await item(page, 'the tram it is').waitFor();
    assert.ok(await bar.isHidden());
    const now = await current(user, session.id);
    assert.deepEqual(now.messages.map((m) => m.content),
      ['How do I get to Belém?', 'Tram 15E from Praça da Figueira.', 'Thanks, the tram it is.']);
  });
});
