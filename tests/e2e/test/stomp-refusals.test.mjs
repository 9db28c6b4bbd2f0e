// STOMP refusals with real clients: every refused CONNECT or frame gets an ERROR frame with a
// `message` header and the connection closes; a fresh client works afterwards
// (contract: realtime.md §1 "Authentication and authorization", "Limits").

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  SECRET,
  jwtPayload,
  rawStomp,
  signJwt,
  sleep,
  sseStream,
  startServer,
  stomp,
  stompConnected,
  within,
} from '../harness.mjs';

let server;
let admin;
let alice;
let bob;
let carol;
let general;
let secret; // private channel of bob and carol
let loggedOutToken; // signature valid, session ended by logout
let replacedToken; // signature valid, session replaced by a later login
before(async () => {
  server = await startServer();
  let dave;
  [admin, alice, bob, carol, dave] = await Promise.all([
    server.admin(),
    server.user('alice'),
    server.user('bob'),
    server.user('carol'),
    server.user('dave'),
  ]);
  general = await admin.createPublicChannel('general');
  secret = await bob.createPrivateChannel([bob.id, carol.id]);
  loggedOutToken = dave.token;
  await dave.logout();
  await dave.login(dave.user.username);
  replacedToken = dave.token;
  await dave.login(dave.user.username);
});
after(async () => {
  await server?.stop();
});

const channelDest = (id) => `/sub/channels.${id}.messages`;

/** Waits for the ERROR frame and the close; returns the frame. */
async function refused(s, pattern, what) {
  const err = await s.error();
  const message = err.headers.message;
  assert.ok(message, `${what}: ERROR frame has a message header`);
  assert.match(`${message}\n${err.body}`, pattern, `${what}: ERROR says why (message: ${message})`);
  await s.closed();
  return err;
}

/** A fresh client on `transport` connects, subscribes, publishes and receives. */
async function stillWorks(transport) {
  const s = await stompConnected(server, { transport, token: carol.token });
  try {
    const dest = channelDest(general.id);
    const inbox = await s.subscribe(dest);
    const content = `still works ${Math.random()}`;
    s.publish('/pub/messages', { content, channelId: general.id, authorId: carol.id });
    const m = await inbox.next();
    assert.equal(JSON.parse(m.body).content, content);
  } finally {
    await s.close();
  }
}

const AUTH = /unauthori[sz]ed|token|authenticat|authori[sz]ation|expired|revoked|session/i;

for (const transport of ['raw', 'websocket', 'xhr-streaming']) {
  const label = transport === 'raw' ? 'raw WebSocket' : `SockJS ${transport}`;

  test(`${label}: CONNECT without a token → ERROR, close`, async () => {
    await refused(stomp(server, { transport }), AUTH, 'no token');
    await stillWorks(transport);
  });

  test(`${label}: CONNECT with a bad token (garbage, wrong signature) → ERROR, close`, async () => {
    await refused(stomp(server, { transport, token: 'not-a-jwt' }), AUTH, 'garbage token');
    const forged = signJwt(jwtPayload(alice.token), `${SECRET}-but-not-the-right-one`);
    await refused(stomp(server, { transport, token: forged }), AUTH, 'wrong signature');
    await stillWorks(transport);
  });

  test(`${label}: CONNECT with the token of an ended session (logout, re-login) → ERROR, close`, async () => {
    await refused(stomp(server, { transport, token: loggedOutToken }), AUTH, 'after logout');
    await refused(stomp(server, { transport, token: replacedToken }), AUTH, 'session replaced by a new login');
    await stillWorks(transport);
  });

  test(`${label}: SUBSCRIBE to a private channel the user is not in → ERROR naming it, close`, async () => {
    const s = await stompConnected(server, { transport, token: alice.token });
    const dest = channelDest(secret.id);
    s.subscribeNoWait(dest);
    const err = await refused(s, /./, 'private subscribe');
    assert.ok(`${err.headers.message}\n${err.body}`.includes(dest), 'the ERROR names the destination');
    await stillWorks(transport);
  });

  test(`${label}: SEND to a private channel the user is not in → ERROR, nothing stored`, async () => {
    const s = await stompConnected(server, { transport, token: alice.token });
    s.publish('/pub/messages', { content: 'intrusion', channelId: secret.id, authorId: alice.id });
    const err = await refused(s, /./, 'private send');
    assert.ok(`${err.headers.message}\n${err.body}`.includes('/pub/messages'), 'the ERROR names the destination');
    assert.deepEqual((await bob.messages(secret.id)).filter((m) => m.content === 'intrusion'), []);
    await stillWorks(transport);
  });

  test(`${label}: SEND with someone else's authorId → ERROR, nothing stored or broadcast`, async () => {
    const watcher = await stompConnected(server, { transport: 'raw', token: carol.token });
    const s = await stompConnected(server, { transport, token: alice.token });
    try {
      const dest = channelDest(general.id);
      const seen = await watcher.subscribe(dest);
      const content = `impersonation over ${transport}`;
      s.publish('/pub/messages', { content, channelId: general.id, authorId: bob.id });
      await refused(s, /author|forbidden|denied|not allowed|permission/i, 'foreign authorId');
      const real = await carol.postMessage(general.id, 'barrier');
      assert.equal(JSON.parse((await seen.next()).body).id, real.id, 'no forged message before the barrier');
      assert.deepEqual((await carol.messages(general.id)).filter((m) => m.content === content), []);
    } finally {
      await watcher.close();
    }
    await stillWorks(transport);
  });

  test(`${label}: a frame over 64 KiB → ERROR about the size, close`, async () => {
    const s = await stompConnected(server, { transport, token: alice.token });
    const content = 'x'.repeat(70 * 1024);
    s.publish('/pub/messages', { content, channelId: general.id, authorId: alice.id });
    await refused(s, /frame|size|large|long|limit|exceed/i, 'oversize frame');
    await stillWorks(transport);
  });

  test(`${label}: SEND to an unknown /pub destination → ERROR naming it, close`, async () => {
    const s = await stompConnected(server, { transport, token: alice.token });
    s.publish('/pub/nowhere', { x: 1 });
    const err = await refused(s, /./, 'unknown destination');
    assert.ok(`${err.headers.message}\n${err.body}`.includes('/pub/nowhere'), 'the ERROR names the destination');
    await stillWorks(transport);
  });

}

test('logout closes the user\'s live STOMP sessions on every transport', async () => {
  const erin = await server.user('erin');
  const transports = ['raw', 'websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];
  const sessions = await Promise.all(transports.map((transport) => stompConnected(server, { transport, token: erin.token })));
  await Promise.all(sessions.map((s) => s.subscribe(channelDest(general.id))));
  await erin.logout();
  await Promise.all(sessions.map((s) => s.closed(5000)));
  await stillWorks('raw');
});

test('role change and user deletion close the user\'s STOMP sessions and SSE streams', async () => {
  const [frank, gina] = await Promise.all([server.user('frank'), server.user('gina')]);
  const open = async (u) => ({
    stomp: await stompConnected(server, { transport: 'xhr-streaming', token: u.token }),
    raw: await stompConnected(server, { transport: 'raw', token: u.token }),
    sse: await sseStream(server, u.token),
  });
  const [f, g] = await Promise.all([open(frank), open(gina)]);
  await Promise.all([f.sse, g.sse].map((x) => x.inbox.until((e) => e.type === 'connect')));

  await admin.expect(200, 'PUT', '/api/auth/role', { json: { userId: frank.id, newRole: 'CHANNEL_MANAGER' } });
  await Promise.all([f.stomp.closed(), f.raw.closed(), within(f.sse.done, 5000, 'SSE closed after role change')]);
  assert.equal(g.raw.isClosed, false, 'other users stay connected');

  await gina.expect(204, 'DELETE', `/api/users/${gina.id}`);
  await Promise.all([g.stomp.closed(), g.raw.closed(), within(g.sse.done, 5000, 'SSE closed after deletion')]);
  await refused(stomp(server, { transport: 'raw', token: gina.token }), AUTH, 'token of a deleted user');
  await stillWorks('raw');
});

/** Frames that break a rule of the contract, sent over the raw WebSocket with stompjs. */
const RAW_REFUSALS = [
  {
    what: 'SUBSCRIBE to a channel that does not exist',
    pattern: /channel|not found|denied/i,
    act: (s) => s.subscribeNoWait(channelDest('00000000-0000-4000-8000-000000000000')),
  },
  {
    what: 'SEND /pub/messages with a body that is not JSON',
    pattern: /json|malformed|invalid/i,
    act: (s) => s.publish('/pub/messages', 'not json'),
  },
  {
    what: 'SEND /pub/messages with blank content',
    pattern: /content|VALIDATION/i,
    act: (s) => s.publish('/pub/messages', { content: '   ', channelId: general.id, authorId: alice.id }),
  },
  {
    what: 'SEND /pub/messages with content over 2000 characters',
    pattern: /content|VALIDATION/i,
    act: (s) => s.publish('/pub/messages', { content: 'y'.repeat(2001), channelId: general.id, authorId: alice.id }),
  },
  {
    what: 'a frame with 60 headers (limit 50)',
    pattern: /header/i,
    act: (s) => s.publish('/sub/e2e', '{}', Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`h${i}`, 'v']))),
  },
  {
    what: 'a frame with 9 KiB of headers (limit 8 KiB)',
    pattern: /header/i,
    act: (s) => s.publish('/sub/e2e', '{}', { big: 'h'.repeat(9 * 1024) }),
  },
  {
    what: '1001 subscriptions on one connection (limit 1000)',
    pattern: /subscription/i,
    act: (s) => {
      for (let i = 0; i <= 1000; i++) s.subscribeNoWait(`/sub/e2e.${i}`);
    },
  },
];

for (const { what, pattern, act } of RAW_REFUSALS) {
  test(`raw WebSocket: ${what} → ERROR, close, nothing stored`, async () => {
    const newest = async () => (await alice.messages(general.id))[0]?.id;
    const before = await newest();
    const s = await stompConnected(server, { transport: 'raw', token: alice.token });
    act(s);
    await refused(s, pattern, what);
    assert.equal(await newest(), before, 'no message stored');
    await stillWorks('raw');
  });
}

const GARBAGE = Buffer.from([0xff, 0xfe, 0x47, 0x41, 0x52, 0x42, 0x01, 0x02, 0x0a, 0x0a, 0x00]);

/** Waits for an ERROR frame with a message header, then for the server to close. */
async function rawRefused(raw, what) {
  const f = await raw.next();
  assert.equal(f.command, 'ERROR', `${what}: ${f.command} ${f.headers.message ?? ''}`);
  assert.ok(f.headers.message, `${what}: message header`);
  await raw.closed();
  return f;
}

test('raw WebSocket: garbage bytes before CONNECT → ERROR, close', async () => {
  const raw = await rawStomp(server);
  assert.equal(raw.protocol, 'v12.stomp', 'subprotocol negotiated');
  raw.send(GARBAGE);
  await rawRefused(raw, 'garbage before CONNECT');
  await stillWorks('raw');
});

test('raw WebSocket: garbage bytes after CONNECTED → ERROR, close', async () => {
  const raw = await rawStomp(server);
  const connected = await raw.connect(alice.token);
  assert.equal(connected.command, 'CONNECTED');
  assert.equal(connected.headers['user-name'], alice.user.username);
  raw.send('THIS IS NOT STOMP\n\n\0');
  await rawRefused(raw, 'unknown command');

  // Garbage right behind a valid CONNECT in the same socket message.
  const t = await rawStomp(server);
  t.send(Buffer.concat([
    Buffer.from(`CONNECT\naccept-version:1.2\nhost:localhost\nAuthorization:Bearer ${alice.token}\n\n\0`),
    GARBAGE,
  ]));
  assert.equal((await t.next()).command, 'CONNECTED');
  await rawRefused(t, 'garbage behind CONNECT');
  await stillWorks('raw');
});

test('raw WebSocket: a frame before CONNECT → ERROR, close', async () => {
  const raw = await rawStomp(server);
  raw.send(`SUBSCRIBE\nid:0\ndestination:${channelDest(general.id)}\n\n\0`);
  await rawRefused(raw, 'SUBSCRIBE before CONNECT');
});

test('many refused clients in a row leave the server healthy', async () => {
  const attempts = Array.from({ length: 20 }, (_, i) =>
    refused(stomp(server, { transport: i % 2 ? 'raw' : 'websocket', token: `bad-${i}` }), AUTH, `bad ${i}`),
  );
  await Promise.all(attempts);
  await sleep(50);
  await stillWorks('raw');
  await stillWorks('xhr-polling');
});
