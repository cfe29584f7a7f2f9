// An automated accessibility audit (axe-core, a devDependency of these
// tests, injected into the page by the test only) of every view of the app
// (the controls of conversation trees included)
// at desktop and phone sizes (and in dark colours): no violation of impact serious or critical.
// Lesser findings are printed, not failed.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import { APP, call, launch, newPage, newUser, openApp, seedSession } from './lib.mjs';

const require = createRequire(import.meta.url);
const AXE = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const button = (page, name) => page.getByRole('button', { name, exact: true });

const SIZES = {
  desktop: { viewport: { width: 1200, height: 800 } },
  phone: { viewport: { width: 375, height: 740 } },
  'desktop, dark': { viewport: { width: 1200, height: 800 }, colorScheme: 'dark' },
};

const MARKDOWN = [
  '## Steps',
  '',
  'Run **this** with `kubectl` — see [the docs](https://kubernetes.io/docs/).',
  '',
  '- [x] build',
  '- [ ] deploy',
  '',
  '| pod | state |',
  '|---|---|',
  '| web-1 | Running |',
  '',
  '```sh',
  'kubectl rollout undo deployment/web',
  '```',
  '',
  '> a quote, and ![a picture](https://example.org/p.png)',
].join('\n');

// A tool call and its answer (the answer in Arabic, as text).
const TOOLS = [
  ['user', 'Weather in Cairo?'],
  { message_type: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Cairo"}' } }] },
  { message_type: 'tool', tool_call_id: 'c1', name: 'get_weather', content: 'مشمس، ٣٠ درجة' },
];

/** Runs axe on the page as it is; fails on serious or critical violations. */
async function audit(page, what) {
  // The app's CSP allows no script but its own: the audit is evaluated
  // through the DevTools protocol, as the test's own code, not the page's.
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const minor = result.violations.filter((v) => !bad.includes(v));
  if (minor.length) console.log(`${what}: minor findings: ${minor.map((v) => `${v.id} (${v.impact})`).join(', ')}`);
  const describe = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('\n  ')}`);
  assert.deepEqual(describe, [], `${what}: serious or critical accessibility violations`);
}

for (const [size, contextOptions] of Object.entries(SIZES)) {
  describe(`accessibility audit (${size})`, () => {
    test('the home page, a chat with Markdown, one with tool calls, search results', async (t) => {
      const page = await newPage(browser, t, { contextOptions });
      const user = newUser();
      await seedSession(user, { name: 'Kubernetes rollout', messages: [['user', 'How do I undo a rollout?'], ['assistant', MARKDOWN]] });
      const rtl = await seedSession(user, { name: 'שלום', messages: [['system', 'Be brief.'], ['user', 'مرحبا']] });
      const tools = await seedSession(user, { name: 'Weather', messages: TOOLS });
      await openApp(page, user);
      await page.locator('#sessions a').first().waitFor();
      await audit(page, `${size} home`);

      await page.getByRole('link', { name: /Kubernetes rollout/ }).click();
      await page.locator('#messages .code-block').waitFor();
      await audit(page, `${size} chat with Markdown`);

      await openApp(page, user, `sessions/${rtl.id}`);
      await page.locator('#messages .message').nth(1).waitFor();
      await audit(page, `${size} chat with right-to-left text`);

      await openApp(page, user, `sessions/${tools.id}`);
      await page.locator('#messages details').nth(1).waitFor();
      await audit(page, `${size} chat with tool calls`);
      for (const summary of await page.locator('#messages summary').all()) await summary.click();
      await page.locator('#messages details pre').nth(1).waitFor();
      await audit(page, `${size} chat with tool calls opened`);

      if (size === 'phone') await button(page, 'Chats').click();
      await page.getByRole('searchbox', { name: 'Search' }).fill('rollout');
      await page.locator('#results-list a').first().waitFor();
      await audit(page, `${size} search results`);
    });

    test('versions of a message, another version shown, the editors, deleting a message', async (t) => {
      const page = await newPage(browser, t, { contextOptions });
      const user = newUser();
      const session = await seedSession(user, { name: 'Colours', messages: [['user', 'Name a colour'], ['assistant', 'Blue']] });
      const { body: { messages: [question, blue] } } = await call('GET', `/api/chat/sessions/${session.id}`, { user });
      const green = await call('POST', `/api/chat/sessions/${session.id}/messages`, {
        user, body: { message_type: 'assistant', content: 'Green', parent_id: question.id },
      });
      assert.equal(green.status, 201);
      // A link to the first answer: that version, not the current one, with its bar.
      await openApp(page, user, `sessions/${session.id}?message=${blue.id}`);
      await page.locator('#branch-bar').waitFor();
      await page.locator('#messages .versions').waitFor();
      await audit(page, `${size} another version, with the version control`);
      await button(page, 'Show the current version').click();
      await page.locator('#branch-bar').waitFor({ state: 'hidden' });
      await page.locator('#messages .message', { hasText: 'Green' }).waitFor();
      await button(page, 'Edit message').click();
      await page.getByRole('textbox', { name: 'Edited message' }).waitFor();
      await audit(page, `${size} editing a message`);
      await page.keyboard.press('Escape');
      await button(page, 'Another reply').click();
      await page.getByRole('textbox', { name: 'Another reply' }).waitFor();
      await audit(page, `${size} another reply`);
      await page.keyboard.press('Escape');
      await button(page, 'Delete message').first().click();
      const dialog = page.getByRole('dialog', { name: 'Delete this message?' });
      await dialog.waitFor();
      await audit(page, `${size} dialog “Delete this message?”`);
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
    });

    test('each dialog', async (t) => {
      const page = await newPage(browser, t, { contextOptions });
      const user = newUser();
      const session = await seedSession(user, { name: 'Dialogs', messages: [['user', 'hi']] });
      await openApp(page, user, `sessions/${session.id}`);
      await page.locator('#messages .message').first().waitFor();
      for (const [opener, title] of [['Delete', 'Delete this chat?'], ['Export', 'Export'], ['Import', 'Import chats'], ['Erase data', 'Erase all your data?']]) {
        await button(page, opener).click();
        const dialog = page.getByRole('dialog', { name: title });
        await dialog.waitFor();
        await audit(page, `${size} dialog “${title}”`);
        await page.keyboard.press('Escape');
        await dialog.waitFor({ state: 'hidden' });
      }
      // The archived chat's bar, and the rename form.
      await button(page, 'Rename').click();
      await audit(page, `${size} rename`);
      await page.keyboard.press('Escape');
      await button(page, 'Archive').click();
      await button(page, 'Restore').waitFor();
      await audit(page, `${size} archived chat`);
      assert.ok(page.url().startsWith(APP));
    });
  });
}
