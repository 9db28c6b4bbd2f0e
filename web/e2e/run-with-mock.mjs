#!/usr/bin/env node
// Runs the e2e suite against the in-memory mock server (e2e/mock-server.mjs) on a free port.
// Useful to test the web client without the Rust server: npm run test:e2e:mock
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const port = await new Promise((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const mock = spawn(process.execPath, [join(here, 'mock-server.mjs'), '--port', String(port)], { stdio: ['ignore', 'inherit', 'inherit'] });
const url = `http://127.0.0.1:${port}`;
for (let i = 0; i < 100; i++) {
  try {
    await fetch(url + '/api/auth/csrf-token');
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 100));
  }
}
const env = {
  ...process.env,
  DISCODEIT_E2E_URL: url,
  DISCODEIT_E2E_ADMIN_USERNAME: 'admin',
  DISCODEIT_E2E_ADMIN_PASSWORD: 'Admin!2345',
  DISCODEIT_E2E_RESTART_CMD: `"${process.execPath}" -e "fetch('${url}/__mock/restart',{method:'POST'}).then(r=>r.text()).then(()=>new Promise(r=>setTimeout(r,2500)))"`,
};
const files = ['chat.test.mjs', 'manage.test.mjs'].map((f) => join(here, f));
const test = spawn(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit', env });
test.on('exit', (code) => {
  mock.kill();
  process.exit(code ?? 1);
});
