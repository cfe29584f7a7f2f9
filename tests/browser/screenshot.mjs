// The README's screenshot: a few chats of a demo user, one open.
//
//   cargo run -- serve --data-dir "$(mktemp -d)" &
//   APP_URL=http://127.0.0.1:7071 node tests/browser/screenshot.mjs docs/webapp.png

import { APP, launch, seedSession } from './lib.mjs';

const out = process.argv[2] || 'webapp.png';
const user = 'demo';
await seedSession(user, { name: 'Birthday gift ideas', messages: [['user', 'Ideas for a 10-year-old who likes space?']] });
await seedSession(user, {
  name: 'Kubernetes rollout',
  messages: [['user', 'How do I undo a rollout?'], ['assistant', 'kubectl rollout undo deployment/web']],
});
const lisbon = await seedSession(user, {
  name: 'Trip to Lisbon',
  messages: [
    ['system', 'You are a helpful travel assistant.'],
    ['user', 'Which tram goes to Belém, and what does a day pass cost?'],
    ['assistant', [
      'Take **tram 15E** from Praça da Figueira; it takes about 40 minutes.',
      '',
      '1. Buy a *Viva Viagem* card at any metro station.',
      '2. Load a day pass on it; it is cheaper than paying on board.',
      '',
      '| Ticket | Price |',
      '|---|--:|',
      '| On board | €3.10 |',
      '| 24-hour pass | €6.80 |',
      '',
      'To check the next departures from a terminal:',
      '',
      '```sh',
      'curl -s "https://api.carrismetropolitana.pt/stops/060001/realtime" | jq \'.[0:3]\'',
      '```',
    ].join('\n')],
    ['user', 'And is the <Pastéis de Belém> shop near the stop?'],
  ],
});

const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1100, height: 720 }, deviceScaleFactor: 1 });
await page.addInitScript((u) => localStorage.setItem('chat-sessions.user', u), user);
await page.goto(`${APP}/api/ui/sessions/${lisbon.id}`);
await page.locator('body[data-ready="true"]').waitFor();
await page.getByLabel('Message', { exact: true }).fill('Thanks! What else is worth seeing nearby?');
await page.getByLabel('Message', { exact: true }).blur();
await page.screenshot({ path: out });
await browser.close();
console.log(`wrote ${out}`);
