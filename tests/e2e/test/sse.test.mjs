// SSE at GET /api/sse with the `eventsource` npm client and a plain fetch reader
// (contract: realtime.md §2, discodeit-api.md §6.2–6.3).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { eventSource, sleep, sseStream, startServer } from '../harness.mjs';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Users shared by the tests (bcrypt makes every sign-up and login cost a quarter second in
// a debug build). Tests run one after another and open their own streams.
let server;
let admin;
let alice;
let bob;
let carol;
before(async () => {
  // Keep-alive every second so its test is quick (the default is 15 s).
  server = await startServer({ env: { DISCODEIT_SSE_KEEPALIVE_SECONDS: '1' } });
  [admin, alice, bob, carol] = await Promise.all([
    server.admin(),
    server.user('alice'),
    server.user('bob'),
    server.user('carol'),
  ]);
});
after(async () => {
  await server?.stop();
});

const isChannelRefresh = (id) => (e) => e.type === 'channels.refresh' && e.data?.channelId === id;
const named = (type) => (e) => e.type === type;

test('GET /api/sse: 200 event stream, no-cache headers, `connect` first; refused without a valid token', async () => {
  const s = await sseStream(server, alice.token);
  try {
    assert.equal(s.status, 200);
    assert.match(s.headers.get('content-type'), /^text\/event-stream/);
    assert.equal(s.headers.get('cache-control'), 'no-cache');
    assert.equal(s.headers.get('x-accel-buffering'), 'no');
    const first = await s.inbox.next();
    assert.equal(first.type, 'connect', 'the first event says the stream is live');
  } finally {
    s.close();
  }

  const none = await sseStream(server, null);
  assert.ok([401, 403].includes(none.status), `no token: got ${none.status}`);
  const bad = await sseStream(server, 'not.a.token');
  assert.equal(bad.status, 401, 'bad token');
  assert.equal(bad.body && JSON.parse(bad.body).code, 'INVALID_TOKEN');
});

test('notifications: both streams of the receiver get it, the author and other users do not', async () => {
  const a1 = eventSource(server, alice.token);
  const a2 = eventSource(server, alice.token);
  const b = eventSource(server, bob.token);
  const c = eventSource(server, carol.token);
  const all = [a1, a2, b, c];
  try {
    await Promise.all(all.map((s) => s.opened()));
    await Promise.all(all.map((s) => s.inbox.until(named('connect'))));

    const channel = await alice.createPrivateChannel([alice.id, bob.id]);
    const msg = await bob.postMessage(channel.id, 'hello alice');

    for (const s of [a1, a2]) {
      const n = await s.inbox.until(named('notifications'), 5000, 'notification for alice');
      assert.match(n.id, UUID, 'event id');
      assert.match(n.data.id, UUID);
      assert.equal(n.data.receiverId, alice.id);
      assert.equal(n.data.title, bob.user.username, 'private channel: title is the author name');
      assert.equal(n.data.content, 'hello alice');
      assert.equal(n.data.type, 'NEW_MESSAGE');
      assert.equal(n.data.targetId, channel.id);
      assert.match(n.data.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3,9})?Z$/);
    }
    assert.ok(msg.id);

    // Barrier: a broadcast produced after alice had her notification. Anything addressed
    // to bob or carol by the message would have been delivered before it.
    const barrier = await admin.createPublicChannel('barrier');
    for (const s of [b, c]) {
      const seen = [];
      await s.inbox.until((e) => (seen.push(e), isChannelRefresh(barrier.id)(e)), 5000, 'barrier');
      assert.deepEqual(
        seen.filter(named('notifications')),
        [],
        'no notification for the author or a non-member',
      );
    }
  } finally {
    all.forEach((s) => s.close());
  }
});

test('channels.refresh: public creation to everyone; private creation only to participants with the ChannelDto', async () => {
  const [a, b, c] = [alice, bob, carol].map((u) => eventSource(server, u.token));
  try {
    await Promise.all([a, b, c].map((s) => s.inbox.until(named('connect'))));

    const pub = await admin.createPublicChannel('news', 'all of it');
    for (const s of [a, b, c]) {
      const e = await s.inbox.until(named('channels.refresh'), 5000, 'public channels.refresh');
      assert.deepEqual(e.data, { channelId: pub.id });
    }

    const priv = await alice.createPrivateChannel([alice.id, bob.id]);
    for (const s of [a, b]) {
      const e = await s.inbox.until(named('channels.refresh'), 5000, 'private channels.refresh');
      assert.equal(e.data.id ?? e.data.channelId, priv.id);
      if (e.data.id) {
        assert.equal(e.data.type, 'PRIVATE');
        assert.deepEqual(
          e.data.participants.map((p) => p.id).sort(),
          [alice.id, bob.id].sort(),
        );
      }
    }
    const barrier = await admin.createPublicChannel('barrier');
    const seen = [];
    await c.inbox.until((e) => (seen.push(e), isChannelRefresh(barrier.id)(e)));
    assert.deepEqual(seen.filter(named('channels.refresh')).length, 1, 'carol saw only the barrier');
  } finally {
    [a, b, c].forEach((s) => s.close());
  }
});

test('users.refresh when another user logs in', async () => {
  const a = eventSource(server, alice.token);
  try {
    await a.inbox.until(named('connect'));
    const dave = await server.user('dave');
    const e = await a.inbox.until(
      (x) => x.type === 'users.refresh' && x.data?.userId === dave.id,
      5000,
      'users.refresh for dave',
    );
    assert.deepEqual(e.data, { userId: dave.id });
  } finally {
    a.close();
  }
});

test('binaryContents.status: the uploader learns that the attachment was stored', async () => {
  const channel = await admin.createPublicChannel('files');
  const a = eventSource(server, alice.token);
  try {
    await a.inbox.until(named('connect'));
    const msg = await alice.postMessage(channel.id, 'file', [
      { name: 'a.txt', type: 'text/plain', data: Buffer.from('attached bytes') },
    ]);
    const att = msg.attachments[0];
    assert.equal(att.uploadStatus, 'WAITING');
    const e = await a.inbox.until(
      (x) => x.type === 'binaryContents.status' && x.data?.id === att.id,
      10_000,
      'binaryContents.status',
    );
    assert.deepEqual(e.data, { ...att, uploadStatus: 'SUCCESS' });
  } finally {
    a.close();
  }
});

test('binaryContents.status audience: everyone for a public channel, only members for a private one', async () => {
  const pub = await admin.createPublicChannel('pub-files');
  const priv = await alice.createPrivateChannel([alice.id, bob.id]);
  const [b, c] = [bob, carol].map((u) => eventSource(server, u.token));
  try {
    await Promise.all([b, c].map((s) => s.inbox.until(named('connect'))));
    const file = [{ name: 'p.txt', type: 'text/plain', data: Buffer.from('public') }];
    const inPublic = (await alice.postMessage(pub.id, 'pub', file)).attachments[0];
    for (const s of [b, c]) {
      await s.inbox.until((x) => x.type === 'binaryContents.status' && x.data?.id === inPublic.id, 10_000, 'public file status');
    }
    const inPrivate = (await alice.postMessage(priv.id, 'priv', file)).attachments[0];
    await b.inbox.until((x) => x.type === 'binaryContents.status' && x.data?.id === inPrivate.id, 10_000, 'private file status');
    const barrier = await admin.createPublicChannel('barrier');
    const seen = [];
    await c.inbox.until((e) => (seen.push(e), isChannelRefresh(barrier.id)(e)), 5000, 'barrier');
    assert.deepEqual(seen.filter((e) => e.data?.id === inPrivate.id), [], 'a non-member learns nothing about a private file');
  } finally {
    [b, c].forEach((s) => s.close());
  }
});

/**
 * Replay scenario: alice holds a witness stream the whole time. A first stream sees one
 * event and goes away; while it is away events addressed to alice (and broadcasts) occur;
 * `reconnect(lastId)` opens a new stream that must replay exactly the events the witness
 * got after `lastId`, in order, and then continue live without duplicates.
 */
async function replayScenario(reconnect) {
  const witness = await sseStream(server, alice.token);
  const first = eventSource(server, alice.token);
  let second;
  try {
    await witness.inbox.until(named('connect'));
    await first.inbox.until(named('connect'));
    const c0 = await admin.createPublicChannel('before');
    const seenFirst = await first.inbox.until(isChannelRefresh(c0.id));
    await witness.inbox.until(isChannelRefresh(c0.id));
    first.close();

    // Missed while away: a login broadcast, a private channel, a notification, a broadcast.
    await bob.login(bob.user.username);
    await witness.inbox.until((e) => e.type === 'users.refresh' && e.data.userId === bob.id);
    const priv = await bob.createPrivateChannel([alice.id, bob.id]);
    await witness.inbox.until((e) => e.type === 'channels.refresh');
    await bob.postMessage(priv.id, 'while you were away');
    await witness.inbox.until(named('notifications'));
    const c1 = await admin.createPublicChannel('during');
    await witness.inbox.until(isChannelRefresh(c1.id));

    const idx = witness.inbox.all.findIndex((e) => e.id === seenFirst.id);
    assert.ok(idx >= 0, 'witness saw the same event id as the first stream');
    const missed = witness.inbox.all.slice(idx + 1);
    const types = new Set(missed.map((e) => e.type));
    for (const t of ['users.refresh', 'channels.refresh', 'notifications']) {
      assert.ok(types.has(t), `missed events include ${t}: ${JSON.stringify([...types])}`);
    }

    second = await reconnect(seenFirst.id);
    const connect = await second.inbox.next();
    assert.equal(connect.type, 'connect');
    const marker = await admin.createPublicChannel('after');
    const got = [];
    await second.inbox.until((e) => (got.push(e), isChannelRefresh(marker.id)(e)), 5000, 'marker');
    const strip = (e) => ({ type: e.type, id: e.id, data: e.data });
    assert.deepEqual(got.map(strip), [...missed, got.at(-1)].map(strip), 'exactly the missed events, in order, then live');
    const ids = got.map((e) => e.id);
    assert.deepEqual([...ids].sort(), ids, 'event ids increase');
  } finally {
    witness.close();
    first.close();
    second?.close();
  }
}

test('replay with the Last-Event-ID header (eventsource client)', async () => {
  await replayScenario(async (lastId) =>
    eventSource(server, alice.token, { headers: { 'Last-Event-ID': lastId } }),
  );
});

test('replay with the ?lastEventId= query parameter', async () => {
  await replayScenario((lastId) =>
    sseStream(server, alice.token, { query: `?lastEventId=${encodeURIComponent(lastId)}` }),
  );
});

test('replay with the ?LastEventId= query parameter (s12 spelling)', async () => {
  await replayScenario((lastId) =>
    sseStream(server, alice.token, { query: `?LastEventId=${encodeURIComponent(lastId)}` }),
  );
});

test('an id older than the kept history gets a `reset` event', async () => {
  const s = await sseStream(server, alice.token, {
    headers: { 'Last-Event-ID': '00000000-0000-7000-8000-000000000000' },
  });
  try {
    assert.equal(s.status, 200);
    assert.equal((await s.inbox.next()).type, 'connect');
    assert.equal((await s.inbox.next()).type, 'reset');
  } finally {
    s.close();
  }
});

test('logout closes the user\'s streams; the client\'s reconnect is refused with 401', async () => {
  const erin = await server.user('erin');
  const raw = await sseStream(server, erin.token);
  const es = eventSource(server, erin.token);
  const other = await sseStream(server, bob.token);
  try {
    await raw.inbox.until(named('connect'));
    await es.inbox.until(named('connect'));
    await erin.logout();
    await raw.done; // the server ended the stream
    const err = await es.errors.until((e) => e.code === 401, 10_000, 'reconnect refused with 401');
    assert.equal(err.code, 401);
    assert.equal(es.es.readyState, 2, 'the client gave up (CLOSED)');
    // Bob's stream is untouched.
    const c = await admin.createPublicChannel('still-there');
    await other.inbox.until(isChannelRefresh(c.id));
  } finally {
    raw.close();
    es.close();
    other.close();
  }
});

test('keep-alive: an idle stream gets comment lines at the configured interval', async () => {
  const s = await sseStream(server, alice.token);
  try {
    await s.inbox.until(named('connect'));
    const since = Date.now();
    await sleep(2600);
    const pings = s.comments.filter((c) => c.at > since);
    assert.ok(pings.length >= 1, `comments after 2.6 s idle with a 1 s interval: ${pings.length}`);
  } finally {
    s.close();
  }
});
