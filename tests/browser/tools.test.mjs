// Tool calling in the web app (issue 24): an assistant message's tool calls
// and the tool messages answering them are compact blocks, collapsed until
// opened, not chat bubbles; what they hold is shown as text.
//
// With SCREENSHOTS set (a directory; relative to the repository), the chat
// is also saved as PNGs there, collapsed and expanded, light and dark:
//
//   SCREENSHOTS=target/screenshots cargo test --locked --test it -- browser

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { APP, call, launch, newPage, newUser, openApp, seedSession, shownMessages } from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = process.env.SCREENSHOTS ? new URL(process.env.SCREENSHOTS.replace(/\/?$/, '/'), `file://${ROOT}`) : null;

async function screenshot(page, name) {
  if (!SHOTS) return;
  await mkdir(SHOTS, { recursive: true });
  const path = fileURLToPath(new URL(`${name}.png`, SHOTS));
  await page.screenshot({ path });
  console.log(`screenshot: ${path}`);
}

// Key order, spacing and a number too big for a double, as a model wrote them.
const ARGUMENTS = '{"city":"Lisbon","units":"metric","2":true,"trace":12345678901234567890}';
const PRETTY = '{\n  "city": "Lisbon",\n  "units": "metric",\n  "2": true,\n  "trace": 12345678901234567890\n}';
const RESULT = '{"temp_c":21,"sky":"sunny"}';

const WEATHER = [
  ['user', 'What is the weather in Lisbon?'],
  {
    message_type: 'assistant',
    content: '',
    tool_calls: [{ id: 'call_lisbon', type: 'function', function: { name: 'get_weather', arguments: ARGUMENTS } }],
  },
  { message_type: 'tool', tool_call_id: 'call_lisbon', name: 'get_weather', content: RESULT },
  ['assistant', 'It is **21 °C** and sunny in Lisbon.'],
];

describe('tool calls and tool messages', () => {
  test('are collapsed blocks, not bubbles; opening one shows the arguments as indented JSON', async (t) => {
    const page = await newPage(browser, t, { contextOptions: { permissions: ['clipboard-read', 'clipboard-write'] } });
    const user = newUser();
    const session = await seedSession(user, { name: 'Weather', messages: WEATHER });
    await openApp(page, user, `sessions/${session.id}`);
    const items = page.locator('#messages > .message');
    await items.nth(3).waitFor();
    assert.equal(await items.count(), 4);

    // Only the user's question and the answer are bubbles with text.
    assert.deepEqual(await shownMessages(page), ['What is the weather in Lisbon?', 'It is 21 °C and sunny in Lisbon.']);
    const [question, calling, tool, answer] = await items.all();
    assert.equal(await answer.locator('strong').textContent(), '21 °C', 'the answer is Markdown');
    for (const [li, summary] of [[calling, 'Called get_weather'], [tool, 'Result of get_weather']]) {
      assert.equal(await li.locator('.content').count(), 0, `${summary}: no bubble text`);
      assert.equal(await li.getByRole('button', { name: 'Copy message' }).count(), 0);
      // No bubble: no background, no border, unlike the messages with text.
      const look = await li.evaluate((el) => [getComputedStyle(el).backgroundColor, getComputedStyle(el).borderTopColor]);
      assert.deepEqual(look, ['rgba(0, 0, 0, 0)', 'rgba(0, 0, 0, 0)'], `${summary}: not a bubble`);
      const block = li.locator('details.tool-block');
      assert.equal(await block.count(), 1);
      assert.equal(await block.evaluate((d) => d.open), false, `${summary}: collapsed by default`);
      // The summary says what it is (the icon is decoration, hidden).
      assert.equal((await block.locator('summary').innerText()).trim(), summary);
      assert.equal(await block.locator('summary svg').getAttribute('aria-hidden'), 'true');
      assert.equal(await block.locator('pre').isVisible(), false, `${summary}: its body is hidden`);
    }
    for (const bubble of [question, answer]) {
      assert.notEqual(await bubble.evaluate((el) => getComputedStyle(el).backgroundColor), 'rgba(0, 0, 0, 0)');
    }
    assert.equal(await page.getByText('"city"').isVisible(), false, 'the arguments are not shown');
    await screenshot(page, 'tool-messages');

    // Opened from the keyboard: the arguments indented, exactly as written otherwise.
    const callBlock = calling.locator('details');
    await callBlock.locator('summary').focus();
    await page.keyboard.press('Enter');
    assert.equal(await callBlock.evaluate((d) => d.open), true);
    const args = callBlock.locator('pre code');
    await args.waitFor();
    assert.equal(await args.textContent(), PRETTY);
    assert.equal(await args.getAttribute('class'), 'language-json');
    assert.match(await callBlock.locator('.code-head').innerText(), /Arguments · call call_lisbon/);
    await callBlock.getByRole('button', { name: 'Copy arguments' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), PRETTY);
    // The result stays closed until it is opened too.
    assert.equal(await tool.locator('pre').isVisible(), false);
    await tool.locator('summary').click();
    assert.equal(await tool.locator('pre code').textContent(), '{\n  "temp_c": 21,\n  "sky": "sunny"\n}');
    assert.equal(await tool.getByRole('button', { name: 'Copy result' }).count(), 1);
    await screenshot(page, 'tool-messages-expanded');
    await page.emulateMedia({ colorScheme: 'dark' });
    await screenshot(page, 'tool-messages-expanded-dark');
    await callBlock.locator('summary').click();
    await tool.locator('summary').click();
    await screenshot(page, 'tool-messages-dark');
    await page.emulateMedia({ colorScheme: 'light' });

    // A link to the tool message (a search hit) opens its block.
    const { body } = await call('GET', `/api/chat/sessions/${session.id}/messages`, { user });
    const toolMessage = body.messages.find((m) => m.message_type === 'tool');
    await page.goto(`${APP}/api/ui/sessions/${session.id}?message=${toolMessage.id}`);
    const hit = page.locator('#messages .message.hit');
    await hit.waitFor();
    assert.equal(await hit.locator('details').evaluate((d) => d.open), true);
    assert.equal(await page.evaluate(() => document.activeElement.dataset.id), toolMessage.id);
  });

  test('text beside calls is a bubble; what is not JSON, HTML too, is shown as text', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    const html = '<img src=x onerror="window.__pwned=1"> <b>not bold</b>';
    const session = await seedSession(user, {
      name: 'Tides',
      messages: [
        ['user', 'And the tides?'],
        {
          message_type: 'assistant',
          content: 'Let me check the **tides**.',
          tool_calls: [
            { id: 'call_tides', type: 'function', function: { name: 'get_tides', arguments: html } },
            { id: 'call_moon', type: 'function', function: { name: 'moon_phase', arguments: '{}' } },
          ],
        },
        // No name: the call it answers names the function.
        { message_type: 'tool', tool_call_id: 'call_tides', content: `high tide 14:02 ${html}` },
      ],
    });
    await openApp(page, user, `sessions/${session.id}`);
    const items = page.locator('#messages > .message');
    await items.nth(2).waitFor();
    const [, calling, tool] = await items.all();
    assert.equal(await calling.locator('.content strong').textContent(), 'tides', 'the text is Markdown, as usual');
    assert.equal(await calling.getByRole('button', { name: 'Copy message' }).count(), 1);
    assert.deepEqual(await calling.locator('summary').allInnerTexts(), ['Called get_tides', 'Called moon_phase']);
    assert.deepEqual(await calling.locator('details').evaluateAll((ds) => ds.map((d) => d.open)), [false, false]);
    assert.equal((await tool.locator('summary').innerText()).trim(), 'Result of get_tides');

    for (const d of await page.locator('#messages details summary').all()) await d.click();
    assert.deepEqual(await calling.locator('pre code').allTextContents(), [html, '{}']);
    assert.equal(await tool.locator('pre code').textContent(), `high tide 14:02 ${html}`);
    assert.equal(await page.locator('main img, main b').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
  });

  test('a tool message without a name is named after its call once the page with the call is loaded', async (t) => {
    const page = await newPage(browser, t);
    const user = newUser();
    // The newest 50 are shown first: the tool message, not the call before it.
    const session = await seedSession(user, {
      name: 'Paged',
      messages: [
        ['user', 'Weather?'],
        { message_type: 'assistant', content: '', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
        { message_type: 'tool', tool_call_id: 'call_1', content: '{"temp_c":21}' },
        ...Array.from({ length: 49 }, (_, i) => ['user', `message ${i + 1}`]),
      ],
    });
    await openApp(page, user, `sessions/${session.id}`);
    const result = page.locator('#messages .message.tool');
    await result.waitFor();
    assert.equal((await result.locator('summary').innerText()).trim(), 'Tool result');
    await result.locator('summary').click();
    // Older messages load as the reader scrolls up to them.
    await page.locator('#scroller').evaluate((e) => { e.scrollTop = 0; });
    await result.locator('summary', { hasText: 'Result of get_weather' }).waitFor();
    assert.equal(await page.locator('#messages .message').count(), 52);
    assert.equal(await result.locator('details').evaluate((d) => d.open), true, 'still open');
  });
});
