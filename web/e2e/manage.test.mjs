// End-to-end tests of editing and deleting messages, unread counts, channel management,
// browser notifications and the image lightbox: several users in their own browser contexts
// against a running discodeit server (see chat.test.mjs for the environment).
//
//   DISCODEIT_E2E_URL=http://127.0.0.1:8080 npm run test:e2e
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ADMIN_PASSWORD,
  ADMIN_USERNAME,
  BASE,
  PASSWORD,
  SCREENSHOT,
  channelItem,
  launch,
  login,
  makePng,
  messageWith,
  newPage,
  openChannel,
  sendText,
  signup,
  tid,
  uniqueName,
  waitConnected,
} from './lib.mjs';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `alice-3f9a1c`: unique enough for a shared server, readable in the screenshot. */
const readable = (prefix) => `${prefix}-${randomBytes(3).toString('hex')}`;

/**
 * Records every browser notification the app raises (the real constructor still runs), so
 * the test can read what was shown and click it.
 */
function recordNotifications() {
  const Real = window.Notification;
  if (!Real) return;
  window.__notifications = [];
  class Recorded extends Real {
    constructor(title, options) {
      super(title, options);
      window.__notifications.push({ title, body: options?.body ?? '', instance: this });
    }
  }
  Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
  Recorded.requestPermission = (...a) => Real.requestPermission(...a);
  window.Notification = Recorded;
}

/**
 * Playwright keeps every page visible and focused (no API can hide a tab), so a hidden tab is
 * emulated the way the browser reports one: `document.visibilityState` / `hidden` and a
 * `visibilitychange` event.
 */
async function setHidden(page, hidden) {
  await page.evaluate((h) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

/** The number in the tab title, "(3) discodeit" → 3. */
async function titleCount(page) {
  const m = /^\((\d+)\+?\) /.exec(await page.title());
  return m ? Number(m[1]) : 0;
}

async function waitTitleCount(page, n) {
  await page.waitForFunction((want) => {
    const m = /^\((\d+)\+?\) /.exec(document.title);
    return (m ? Number(m[1]) : 0) === want;
  }, n);
}

function unreadItem(page, channelId, count) {
  return page.locator(`${tid('channel-item')}[data-channel-id="${channelId}"][data-unread-count="${count}"]`);
}

/** Hovers a message (its actions show on hover or focus) and clicks one of them. */
async function messageAction(page, text, action) {
  const msg = messageWith(page, text).first();
  await msg.hover();
  await msg.locator(tid(action)).click();
}

if (!BASE) {
  test('e2e configuration', () => assert.fail('DISCODEIT_E2E_URL is not set (see chat.test.mjs)'));
} else {
  let browser;
  const ctx = {}; // alice, bob, maria (channel manager), admin
  const names = { alice: readable('alice'), bob: readable('bob'), maria: readable('maria') };
  let lounge = null; // public channel everyone chats in, deleted at the end
  let second = null; // another public channel
  let dm = null; // private channel of alice and bob

  const T = { timeout: 90_000 };

  before(async () => {
    browser = await launch();
    ctx.alice = await newPage(browser, 'alice');
    ctx.bob = await newPage(browser, 'bob', { permissions: ['notifications'], initScript: recordNotifications });
    ctx.maria = await newPage(browser, 'maria');
  });

  after(async () => {
    await browser?.close();
  });

  test('setup: users sign up, maria becomes channel manager and creates two channels', T, async (t) => {
    if (!ADMIN_USERNAME || !ADMIN_PASSWORD) {
      t.skip('DISCODEIT_E2E_ADMIN_USERNAME / _PASSWORD not set');
      return;
    }
    for (const k of ['alice', 'bob', 'maria']) await signup(ctx[k].page, { username: names[k], email: `${names[k]}@example.com` });
    ctx.admin = await newPage(browser, 'admin');
    const { page } = ctx.admin;
    await login(page, ADMIN_USERNAME, ADMIN_PASSWORD);
    await page.click(tid('admin-button'));
    await page.locator(`${tid('admin-user-row')}[data-username="${names.maria}"] ${tid('admin-role-select')}`).selectOption('CHANNEL_MANAGER');
    await ctx.maria.page.waitForSelector(tid('login-form'));
    await page.keyboard.press('Escape');
    await page.waitForSelector(tid('admin-dialog'), { state: 'detached' });
    const m = ctx.maria.page;
    await login(m, names.maria, PASSWORD);
    await m.waitForSelector(`${tid('current-user')}[data-role="CHANNEL_MANAGER"]`);
    const create = async (name) => {
      await m.click(tid('create-public-channel-button'));
      await m.fill(tid('public-channel-name'), name);
      await m.fill(tid('public-channel-description'), 'Everything else');
      await m.click(tid('public-channel-submit'));
      const header = m.locator(`${tid('channel-header')}:not([data-channel-id=""])`, { hasText: name });
      await header.waitFor();
      return header.getAttribute('data-channel-id');
    };
    lounge = await create(readable('lounge'));
    second = await create(readable('general'));
    for (const k of ['alice', 'bob', 'maria', 'admin']) {
      await waitConnected(ctx[k].page);
      await channelItem(ctx[k].page, lounge).waitFor();
      await channelItem(ctx[k].page, second).waitFor();
    }
  });

  test('edits and deletions are seen live by the other user; Escape cancels an edit', T, async () => {
    assert.ok(lounge, 'needs the setup');
    const a = ctx.alice.page;
    const b = ctx.bob.page;
    await openChannel(a, lounge);
    await openChannel(b, lounge);
    const draft = `teh draft ${uniqueName('e')}`;
    await sendText(a, draft);
    await messageWith(b, draft).waitFor();

    // bob may neither edit nor delete alice's message; the admin may delete it
    const bobsView = messageWith(b, draft).first();
    await bobsView.hover();
    assert.equal(await bobsView.locator(tid('message-edit')).count(), 0);
    assert.equal(await bobsView.locator(tid('message-delete')).count(), 0);
    await openChannel(ctx.admin.page, lounge);
    const adminsView = messageWith(ctx.admin.page, draft).first();
    await adminsView.waitFor();
    assert.equal(await adminsView.locator(tid('message-edit')).count(), 0);
    assert.equal(await adminsView.locator(tid('message-delete')).count(), 1);

    // Escape cancels: nothing is saved
    await messageAction(a, draft, 'message-edit');
    const input = a.locator(tid('message-edit-input'));
    await input.fill('never saved');
    await input.press('Escape');
    await input.waitFor({ state: 'detached' });
    await messageWith(a, draft).waitFor();
    assert.equal(await a.locator(tid('message-edited')).count(), 0);

    // Enter saves; bob sees the new text with the "(edited)" mark, without a reload
    const fixed = `the final text ${uniqueName('e')}`;
    await messageAction(a, draft, 'message-edit');
    await input.fill(fixed);
    await input.press('Enter');
    const edited = messageWith(b, fixed).first();
    await edited.waitFor({ timeout: 5000 });
    await edited.locator(tid('message-edited')).waitFor();
    assert.equal(await messageWith(b, draft).count(), 0, 'the old text is gone for bob');
    await messageWith(a, fixed).first().locator(tid('message-edited')).waitFor();

    // Delete asks first; Cancel and Escape keep the message
    await messageAction(a, fixed, 'message-delete');
    await a.waitForSelector(tid('confirm-dialog'));
    await a.click(tid('confirm-cancel'));
    await a.waitForSelector(tid('confirm-dialog'), { state: 'detached' });
    await messageAction(a, fixed, 'message-delete');
    await a.waitForSelector(tid('confirm-dialog'));
    await a.keyboard.press('Escape');
    await a.waitForSelector(tid('confirm-dialog'), { state: 'detached' });
    assert.equal(await messageWith(b, fixed).count(), 1);

    const id = await edited.getAttribute('data-message-id');
    await messageAction(a, fixed, 'message-delete');
    await a.click(tid('confirm-submit'));
    await b.waitForSelector(`${tid('message-item')}[data-message-id="${id}"]`, { state: 'detached', timeout: 5000 });
    await a.waitForSelector(`${tid('message-item')}[data-message-id="${id}"]`, { state: 'detached' });
    await ctx.admin.page.waitForSelector(`${tid('message-item')}[data-message-id="${id}"]`, { state: 'detached' });

    // Up in the empty composer edits one's last message
    const last = `last words ${uniqueName('e')}`;
    await sendText(b, last);
    await messageWith(a, last).waitFor();
    await b.locator(tid('composer-input')).press('ArrowUp');
    await b.locator(tid('message-edit-input')).fill(`${last} (amended)`);
    await b.locator(tid('message-edit-input')).press('Enter');
    await messageWith(a, `${last} (amended)`).locator(tid('message-edited')).waitFor({ timeout: 5000 });
  });

  test('images open in a lightbox (Escape closes it), other files are download links', T, async () => {
    assert.ok(lounge, 'needs the setup');
    const a = ctx.alice.page;
    const b = ctx.bob.page;
    const caption = `sunset ${uniqueName('i')}`;
    await a.setInputFiles(tid('composer-file-input'), [
      { name: 'sunset.png', mimeType: 'image/png', buffer: makePng(400, 250, [250, 120, 60]) },
      { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('some notes\n') },
    ]);
    await a.fill(tid('composer-input'), caption);
    await a.click(tid('composer-send'));
    const msg = messageWith(b, caption).first();
    await msg.locator(`${tid('attachment')}[data-content-type="image/png"][data-status="SUCCESS"]`).waitFor({ timeout: 30_000 });
    const file = msg.locator(`${tid('attachment')}[data-content-type="text/plain"][data-status="SUCCESS"]`);
    await file.waitFor({ timeout: 30_000 });
    assert.equal(await file.getAttribute('download'), 'notes.txt', 'a plain file is a download link');

    await msg.locator(tid('attachment-image')).click();
    const img = b.locator(tid('lightbox-image'));
    await img.waitFor();
    await b.waitForFunction((el) => el.complete && el.naturalWidth === 400, await img.elementHandle());
    assert.equal(await b.locator(tid('lightbox-download')).getAttribute('download'), 'sunset.png');
    // focus moved into the dialog and stays there
    for (let i = 0; i < 5; i++) {
      await b.keyboard.press('Tab');
      assert.ok(await b.evaluate(() => !!document.activeElement?.closest('[data-testid="lightbox"]')), 'focus stays in the lightbox');
    }
    await b.keyboard.press('Escape');
    await b.waitForSelector(tid('lightbox'), { state: 'detached' });
    // focus went back to the image that opened it
    await b.waitForFunction(() => document.activeElement?.getAttribute('data-content-type') === 'image/png');
  });

  test('unread counts rise as messages arrive, clear when read, and survive a reload', T, async () => {
    assert.ok(lounge && second, 'needs the setup');
    const a = ctx.alice.page;
    const b = ctx.bob.page;
    await openChannel(b, second);
    await unreadItem(b, lounge, 0).waitFor();
    const before = await titleCount(b);
    const tag = uniqueName('u');
    for (let i = 1; i <= 3; i++) {
      await sendText(a, `${tag} #${i}`);
      await unreadItem(b, lounge, i).waitFor({ timeout: 5000 });
    }
    assert.equal((await channelItem(b, lounge).locator(tid('channel-unread')).innerText()).trim(), '3');
    await waitTitleCount(b, before + 3);

    await openChannel(b, lounge);
    await unreadItem(b, lounge, 0).waitFor();
    await waitTitleCount(b, before);

    // read statuses are stored: after a reload only what came since is unread
    await openChannel(b, second);
    await sendText(a, `${tag} after`);
    await sendText(a, `${tag} after again`);
    await unreadItem(b, lounge, 2).waitFor({ timeout: 5000 });
    await b.reload({ waitUntil: 'domcontentloaded' });
    await b.waitForSelector(`${tid('channel-header')}[data-channel-id="${second}"]`);
    await unreadItem(b, lounge, 2).waitFor({ timeout: 10_000 });
    await openChannel(b, lounge);
    await unreadItem(b, lounge, 0).waitFor();
    await waitConnected(b);
  });

  test('a browser notification is raised while the tab is hidden; clicking it opens the channel', T, async () => {
    assert.ok(lounge, 'needs the setup');
    const a = ctx.alice.page;
    const b = ctx.bob.page;
    assert.equal(await b.evaluate(() => Notification.permission), 'granted');
    // a private channel alice ↔ bob (NEW_MESSAGE notifications are on by default there)
    await a.click(tid('create-private-channel-button'));
    await a.fill(tid('private-user-filter'), names.bob);
    await a.click(`${tid('private-user-option')}[data-username="${names.bob}"]`);
    await a.click(tid('private-channel-submit'));
    const header = a.locator(
      `${tid('channel-header')}:not([data-channel-id=""]):not([data-channel-id="${lounge}"]):not([data-channel-id="${second}"])`,
    );
    await header.waitFor();
    dm = await header.getAttribute('data-channel-id');
    await a.waitForSelector(tid('composer-input'));
    await channelItem(b, dm).waitFor({ timeout: 5000 });
    await openChannel(b, lounge);

    // a visible tab: the notification goes to the bell only
    const bell = () => b.getAttribute(tid('notification-bell'), 'data-count').then(Number);
    const count = await bell();
    const seen = `while looking ${uniqueName('n')}`;
    await sendText(a, seen);
    await b.waitForFunction((n) => Number(document.querySelector('[data-testid="notification-bell"]').dataset.count) > n, count);
    assert.equal(await b.evaluate(() => window.__notifications.length), 0);

    // a hidden tab: a browser notification too
    await setHidden(b, true);
    const text = `are you there? ${uniqueName('n')}`;
    await sendText(a, text);
    await b.waitForFunction((want) => window.__notifications.some((n) => n.body === want), text, { timeout: 5000 });
    const shown = await b.evaluate(() => window.__notifications.map((n) => n.title));
    assert.deepEqual(shown, [names.alice], 'one notification, titled with the sender');
    await unreadItem(b, dm, 2).waitFor();

    await setHidden(b, false);
    await b.evaluate((want) => {
      const n = window.__notifications.find((x) => x.body === want);
      n.instance.dispatchEvent(new Event('click'));
    }, text);
    await b.waitForSelector(`${tid('channel-header')}[data-channel-id="${dm}"]`);
    await messageWith(b, text).waitFor();
    await unreadItem(b, dm, 0).waitFor();
  });

  test('a manager renames and describes a public channel; everyone sees it live; dialogs are keyboard friendly', T, async () => {
    assert.ok(lounge, 'needs the setup');
    const m = ctx.maria.page;
    const b = ctx.bob.page;
    await openChannel(b, lounge);
    // plain users get no management buttons
    assert.equal(await ctx.alice.page.locator(tid('channel-edit-button')).count(), 0);
    assert.equal(await ctx.alice.page.locator(tid('channel-delete-button')).count(), 0);

    await openChannel(m, lounge);
    await m.click(tid('channel-edit-button'));
    await m.waitForSelector(tid('edit-channel-dialog'));
    assert.equal(await m.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'edit-channel-name', 'focus starts in the first field');
    for (let i = 0; i < 6; i++) {
      await m.keyboard.press('Tab');
      assert.ok(await m.evaluate(() => !!document.activeElement?.closest('[data-testid="edit-channel-dialog"]')), 'Tab stays in the dialog');
    }
    await m.keyboard.press('Escape');
    await m.waitForSelector(tid('edit-channel-dialog'), { state: 'detached' });
    await m.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'channel-edit-button'); // focus back on the opener

    const renamed = readable('travel');
    await m.click(tid('channel-edit-button'));
    await m.fill(tid('edit-channel-name'), renamed);
    await m.fill(tid('edit-channel-description'), 'Photos and plans for the trip');
    await m.click(tid('edit-channel-submit'));
    await m.waitForSelector(tid('edit-channel-dialog'), { state: 'detached' });
    await channelItem(b, lounge).locator(tid('channel-name'), { hasText: renamed }).waitFor({ timeout: 5000 });
    await b.locator(tid('channel-title'), { hasText: renamed }).waitFor();
    await b.locator('.chat-sub', { hasText: 'Photos and plans for the trip' }).waitFor();
    await channelItem(ctx.alice.page, lounge).locator(tid('channel-name'), { hasText: renamed }).waitFor({ timeout: 5000 });
  });

  test('screenshot: an edited message, an unread badge and the lightbox', T, async (t) => {
    if (!SCREENSHOT) {
      t.skip('DISCODEIT_E2E_SCREENSHOT is not 1');
      return;
    }
    assert.ok(lounge && second, 'needs the setup');
    const a = ctx.alice.page;
    const b = ctx.bob.page;
    const m = ctx.maria.page;
    // the scene plays in the second channel; lounge collects unread messages for alice
    for (const p of [a, b, m]) await openChannel(p, second);
    await sendText(m, 'Welcome! Pictures from the trip go here.');
    const caption = 'The sunset from the ridge';
    await a.setInputFiles(tid('composer-file-input'), {
      name: 'ridge-sunset.png',
      mimeType: 'image/png',
      buffer: makePng(360, 225, [250, 120, 60]),
    });
    await a.fill(tid('composer-input'), caption);
    await a.click(tid('composer-send'));
    await messageWith(a, caption).locator(`${tid('attachment')}[data-status="SUCCESS"]`).waitFor({ timeout: 30_000 });
    await sendText(b, 'Wow, that one is my favourite');
    const typo = 'Uploading the rest tonigth';
    await sendText(a, typo);
    await messageAction(a, typo, 'message-edit');
    await a.locator(tid('message-edit-input')).fill('Uploading the rest tonight, promised');
    await a.locator(tid('message-edit-input')).press('Enter');
    await messageWith(a, 'promised').locator(tid('message-edited')).waitFor();
    await sendText(m, 'Did anyone keep the train tickets?');
    await sendText(b, 'I have them, sending later');
    await messageWith(a, 'sending later').waitFor();
    await openChannel(b, lounge);
    const before = Number(await channelItem(a, lounge).getAttribute('data-unread-count'));
    await sendText(b, 'Meeting moved to 5 pm');
    await sendText(b, 'Bring the slides');
    await unreadItem(a, lounge, before + 2).waitFor();
    // the image: full size in the lightbox over the chat
    const img = messageWith(a, caption).first().locator(tid('attachment-image'));
    await img.scrollIntoViewIfNeeded();
    await img.click();
    const big = a.locator(tid('lightbox-image'));
    await a.waitForFunction((el) => el.complete && el.naturalWidth > 0, await big.elementHandle());
    await a.mouse.move(0, 0);
    const out = process.env.DISCODEIT_E2E_SCREENSHOT_PATH || join(REPO_ROOT, 'docs', 'screenshot.png');
    mkdirSync(dirname(out), { recursive: true });
    await a.screenshot({ path: out });
    console.log(`# wrote ${out}`);
    await a.keyboard.press('Escape');
    await a.waitForSelector(tid('lightbox'), { state: 'detached' });
  });

  test('a channel deleted by a manager disappears for the others, also for one who has it open', T, async () => {
    assert.ok(lounge, 'needs the setup');
    const m = ctx.maria.page;
    const b = ctx.bob.page;
    const a = ctx.alice.page;
    await openChannel(b, lounge);
    await openChannel(a, second);
    await openChannel(m, lounge);
    await m.click(tid('channel-delete-button'));
    await m.waitForSelector(tid('confirm-dialog'));
    await m.click(tid('confirm-submit'));
    await m.waitForSelector(tid('confirm-dialog'), { state: 'detached' });
    for (const p of [m, b, a]) await channelItem(p, lounge).waitFor({ state: 'detached', timeout: 5000 });
    // bob had it open: the chat pane no longer shows it and says why
    await b.waitForSelector(tid('no-channel'));
    assert.equal(await b.locator(`${tid('channel-header')}[data-channel-id="${lounge}"]`).count(), 0);
    await b.locator(`${tid('toast')}[data-kind="info"]`, { hasText: 'no longer available' }).waitFor();
    // alice's open channel is untouched and still live
    await a.waitForSelector(`${tid('channel-header')}[data-channel-id="${second}"]`);
    await openChannel(b, second);
    const still = `still here ${uniqueName('d')}`;
    await sendText(b, still);
    await messageWith(a, still).waitFor({ timeout: 5000 });
  });

  test('no uncaught errors in any page', () => {
    const errors = Object.values(ctx).flatMap((c) => c.errors);
    assert.deepEqual(errors, []);
  });
}
