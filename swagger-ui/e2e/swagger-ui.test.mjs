// Swagger UI at /swagger-ui in headless Chromium (playwright-core + Debian's chromium), against
// a running discodeit server that serves swagger-ui/dist (scripts/swagger-ui-e2e.sh starts one):
//
//   DISCODEIT_E2E_URL=http://127.0.0.1:8080 npm --prefix swagger-ui run test:e2e
//
// DISCODEIT_E2E_CHROMIUM: browser binary (default /usr/bin/chromium).
// DISCODEIT_E2E_SCREENSHOT_PATH: also save a screenshot of the page there.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const BASE = (process.env.DISCODEIT_E2E_URL || '').replace(/\/+$/, '');
const CHROMIUM = process.env.DISCODEIT_E2E_CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = process.env.DISCODEIT_E2E_SCREENSHOT_PATH || '';
const PASSWORD = 'Passw0rd!swagger';
const TIMEOUT = { timeout: 90_000 };

/** Signs a new user up and logs in through the REST API: { username, token, userId }. */
async function signUpAndLogIn() {
  const csrf = (await (await fetch(`${BASE}/api/auth/csrf-token`)).json()).token;
  const headers = { 'X-XSRF-TOKEN': csrf, Cookie: `XSRF-TOKEN=${csrf}` };
  const username = `sw${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const form = new FormData();
  const request = { username, email: `${username}@swagger.test`, password: PASSWORD };
  form.append('userCreateRequest', new Blob([JSON.stringify(request)], { type: 'application/json' }), 'blob');
  const created = await fetch(`${BASE}/api/users`, { method: 'POST', headers, body: form });
  const createdBody = await created.text();
  assert.equal(created.status, 201, createdBody);
  const userId = JSON.parse(createdBody).id;
  const login = await fetch(`${BASE}/api/auth/login`, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  const loginBody = await login.text();
  assert.equal(login.status, 200, loginBody);
  return { username, userId, token: JSON.parse(loginBody) };
}

/** Every "METHOD /path" the served document describes. */
async function documentedOperations() {
  const res = await fetch(`${BASE}/v3/api-docs`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const doc = await res.json();
  const methods = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
  return Object.entries(doc.paths)
    .flatMap(([path, item]) => Object.keys(item).filter((k) => methods.includes(k)).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
}

async function openSwaggerUi(page) {
  await page.goto(`${BASE}/swagger-ui`, { waitUntil: 'domcontentloaded' });
  assert.equal(new URL(page.url()).pathname, '/swagger-ui/index.html');
  await page.locator('.opblock').first().waitFor();
}

/** Expands an operation, presses "Try it out", fills `params` and the JSON `body`, executes. */
async function tryItOut(page, opId, { params = {}, body = null } = {}) {
  const op = page.locator(`#${opId}`);
  if (!(await op.locator('.opblock-body').count())) await op.locator('.opblock-summary').first().click();
  if (!(await op.locator('button.execute').count())) await op.locator('.try-out__btn').click();
  for (const [name, value] of Object.entries(params)) {
    await op.locator(`tr[data-param-name="${name}"] input`).fill(value);
  }
  if (body !== null) await op.locator('textarea.body-param__text').fill(JSON.stringify(body));
  await op.locator('button.execute').click();
  const status = op.locator('.live-responses-table tr.response .response-col_status').first();
  await status.waitFor();
  return Number((await status.innerText()).trim());
}

if (!BASE) {
  test('swagger-ui e2e configuration', () => assert.fail('DISCODEIT_E2E_URL is not set (a running discodeit server)'));
} else {
  let browser;
  let user;

  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update'],
    });
    user = await signUpAndLogIn();
  });

  after(async () => {
    await browser?.close();
  });

  const newPage = async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    return { context, page, errors };
  };

  test('the page lists every operation of /v3/api-docs', TIMEOUT, async () => {
    const expected = await documentedOperations();
    assert.ok(expected.length >= 28, `only ${expected.length} operations documented`);
    const { context, page, errors } = await newPage();
    try {
      await openSwaggerUi(page);
      const shown = (
        await page.locator('.opblock').evaluateAll((blocks) =>
          blocks.map((b) => {
            const method = b.querySelector('.opblock-summary-method')?.textContent.trim();
            const path = b.querySelector('.opblock-summary-path')?.getAttribute('data-path');
            return `${method} ${path}`;
          }),
        )
      ).sort();
      assert.deepEqual(shown, expected);
      assert.ok(await page.locator('.btn.authorize').isVisible(), 'no Authorize button');
      if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: false });
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('"Try it out" of GET /api/channels answers 200 with a token from Authorize', TIMEOUT, async () => {
    const { context, page, errors } = await newPage();
    try {
      await openSwaggerUi(page);
      // Without a token the server refuses (403), as documented.
      assert.equal(await tryItOut(page, 'operations-Channel-findAllChannelsByUser', { params: { userId: user.userId } }), 403);

      await page.locator('.btn.authorize').first().click();
      const bearer = page.locator('.auth-container', { has: page.locator('h4', { hasText: 'bearerAuth' }) });
      await bearer.locator('input').fill(user.token);
      await bearer.locator('button.authorize').click();
      await page.locator('.dialog-ux button.close-modal').click();

      assert.equal(await tryItOut(page, 'operations-Channel-findAllChannelsByUser', { params: { userId: user.userId } }), 200);
      const body = await page.locator('#operations-Channel-findAllChannelsByUser .live-responses-table tr.response .response-col_description pre').first().innerText();
      assert.ok(Array.isArray(JSON.parse(body)), body);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('"Try it out" of login sends the CSRF header and authorizes the page', TIMEOUT, async () => {
    const { context, page, errors } = await newPage();
    try {
      await openSwaggerUi(page);
      // The browser has no XSRF-TOKEN cookie yet: the initializer fetches one first.
      assert.equal((await context.cookies()).some((c) => c.name === 'XSRF-TOKEN'), false);
      const status = await tryItOut(page, 'operations-Auth-login', {
        body: { username: user.username, password: PASSWORD },
      });
      assert.equal(status, 200);
      assert.ok((await context.cookies()).some((c) => c.name === 'refresh_token'), 'no refresh cookie');
      await page.locator('.btn.authorize.locked').first().waitFor();
      // A protected, CSRF-checked call now works with the page's own token and cookie.
      assert.equal(await tryItOut(page, 'operations-Channel-createPrivateChannel', {
        body: { participantIds: [user.userId, user.userId] },
      }), 201);
      assert.equal(await tryItOut(page, 'operations-Notification-findNotifications'), 200);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
}
