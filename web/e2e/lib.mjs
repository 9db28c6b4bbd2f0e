// Shared helpers for the Playwright (playwright-core + system Chromium) end-to-end tests.
import { chromium } from 'playwright-core';
import { deflateSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';

export const BASE = (process.env.DISCODEIT_E2E_URL || '').replace(/\/+$/, '');
export const ADMIN_USERNAME = process.env.DISCODEIT_E2E_ADMIN_USERNAME || '';
export const ADMIN_PASSWORD = process.env.DISCODEIT_E2E_ADMIN_PASSWORD || '';
export const RESTART_CMD = process.env.DISCODEIT_E2E_RESTART_CMD || '';
export const SCREENSHOT = process.env.DISCODEIT_E2E_SCREENSHOT === '1';
export const CHROMIUM = process.env.DISCODEIT_E2E_CHROMIUM || '/usr/bin/chromium';
export const PASSWORD = 'Passw0rd!e2e';

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export function uniqueName(prefix) {
  return `${prefix}${Date.now().toString(36)}${randomBytes(3).toString('hex')}`.slice(0, 40);
}

/** A fresh browser context + page; page errors are collected in `errors`. `permissions` are
 * granted to the app's origin; `initScript` runs in every document before the app. */
export async function newPage(browser, label, { permissions = [], initScript = null } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  if (permissions.length) await context.grantPermissions(permissions, { origin: BASE });
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`[${label}] pageerror: ${e.message}`));
  page.setDefaultTimeout(15_000);
  return { context, page, errors, label };
}

const tid = (id) => `[data-testid="${id}"]`;
export { tid };

export async function gotoApp(page) {
  await page.goto(BASE + '/', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector(`${tid('login-form')}, ${tid('main-screen')}`);
}

export async function signup(page, { username, email, password = PASSWORD, profile = null }) {
  await gotoApp(page);
  await page.click(tid('goto-signup'));
  await page.fill(tid('signup-username'), username);
  await page.fill(tid('signup-email'), email);
  await page.fill(tid('signup-password'), password);
  if (profile) await page.setInputFiles(tid('signup-profile'), profile);
  await page.click(tid('signup-submit'));
  await page.waitForSelector(tid('main-screen'));
  await page.waitForSelector(`${tid('current-username')}:text-is("${username}")`);
}

export async function login(page, username, password) {
  await gotoApp(page);
  await page.fill(tid('login-username'), username);
  await page.fill(tid('login-password'), password);
  await page.click(tid('login-submit'));
  await page.waitForSelector(tid('main-screen'));
}

/** Waits until both the STOMP and the SSE indicators say "connected". */
export async function waitConnected(page, timeout = 15_000) {
  await page.waitForSelector(`${tid('conn-stomp')}[data-state="connected"]`, { timeout });
  await page.waitForSelector(`${tid('conn-sse')}[data-state="connected"]`, { timeout });
}

export async function connectCounts(page) {
  return page.evaluate(() => ({
    stomp: Number(document.querySelector('[data-testid="conn-stomp"]')?.getAttribute('data-connects') || 0),
    sse: Number(document.querySelector('[data-testid="conn-sse"]')?.getAttribute('data-connects') || 0),
  }));
}

export function channelItem(page, channelId) {
  return page.locator(`${tid('channel-item')}[data-channel-id="${channelId}"]`);
}

export async function openChannel(page, channelId) {
  await channelItem(page, channelId).click();
  await page.waitForSelector(`${tid('channel-header')}[data-channel-id="${channelId}"]`);
  await page.waitForSelector(tid('composer-input'));
  // wait for the first page of messages
  await page.waitForFunction(() => !document.querySelector('[data-testid="messages-loading"]'));
}

export async function sendText(page, text) {
  await page.fill(tid('composer-input'), text);
  await page.press(tid('composer-input'), 'Enter');
}

export function messageWith(page, text) {
  return page.locator(tid('message-item'), { hasText: text });
}

/** Sends `text` from `from` and returns how many ms it took to show up on `to`. */
export async function sendAndMeasure(from, to, text, timeout = 1000) {
  const t0 = Date.now();
  await sendText(from, text);
  await messageWith(to, text).first().waitFor({ timeout });
  return Date.now() - t0;
}

// ---- a tiny PNG encoder (no dependencies) --------------------------------------------------------
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** A w×h RGB PNG with a diagonal gradient in the given base colour. */
export function makePng(w = 64, h = 64, [r, g, b] = [88, 101, 242]) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * 3 + 1);
    raw[row] = 0;
    for (let x = 0; x < w; x++) {
      const f = (x + y) / (w + h);
      raw[row + 1 + x * 3] = Math.round(r * (1 - f) + 255 * f);
      raw[row + 2 + x * 3] = Math.round(g * (1 - f) + 80 * f);
      raw[row + 3 + x * 3] = Math.round(b * (1 - f) + 120 * f);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
