// STOMP 1.2 with @stomp/stompjs over every SockJS transport sockjs-client offers in Node
// and over the raw WebSocket endpoint (contract: realtime.md §1, discodeit-api.md §6.1).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { SOCKJS_TRANSPORTS, eventSource, rawStomp, sleep, startServer, stompConnected } from '../harness.mjs';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const INSTANT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.(\d{3}|\d{6}|\d{9}))?Z$/;

let server;
let admin;
let alice;
let bob;
let general;
before(async () => {
  server = await startServer();
  [admin, alice, bob] = await Promise.all([server.admin(), server.user('alice'), server.user('bob')]);
  general = await admin.createPublicChannel('general');
});
after(async () => {
  await server?.stop();
});

test('GET /ws/info: the SockJS info document', async () => {
  const r = await fetch(`${server.sockjsUrl}/info`);
  assert.equal(r.status, 200, 'the /ws endpoint exists');
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.match(r.headers.get('cache-control'), /no-store/);
  const info = await r.json();
  assert.equal(info.websocket, true);
  assert.equal(typeof info.cookie_needed, 'boolean');
  assert.deepEqual(info.origins, ['*:*']);
  assert.ok(Number.isInteger(info.entropy));

  // Any origin may connect (CORS with credentials, as Spring's SockJS service answers).
  const origin = 'http://elsewhere.test';
  const cors = await fetch(`${server.sockjsUrl}/info`, { headers: { Origin: origin } });
  assert.equal(cors.headers.get('access-control-allow-origin'), origin);
  assert.equal(cors.headers.get('access-control-allow-credentials'), 'true');
  const pre = await fetch(`${server.sockjsUrl}/info`, {
    method: 'OPTIONS',
    headers: { Origin: origin, 'Access-Control-Request-Method': 'GET' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), origin);
  assert.match(pre.headers.get('access-control-allow-methods'), /GET/);
  assert.ok(Number(pre.headers.get('access-control-max-age')) > 0);
});

const channelDest = (id) => `/sub/channels.${id}.messages`;

/** Checks a MESSAGE frame for a channel and returns its parsed MessageDto. */
function messageDto(frame, inbox, dest) {
  assert.equal(frame.headers.destination, dest);
  assert.equal(frame.headers.subscription, inbox.subscription.id);
  assert.ok(frame.headers['message-id'], 'message-id header');
  assert.match(frame.headers['content-type'], /^application\/json/);
  return JSON.parse(frame.body);
}

function assertMessageDto(dto, { content, channelId, author }) {
  assert.match(dto.id, UUID);
  assert.equal(dto.content, content);
  assert.equal(dto.channelId, channelId);
  assert.match(dto.createdAt, INSTANT);
  assert.equal(dto.updatedAt, dto.createdAt);
  assert.deepEqual(dto.author, { ...author, online: null });
  assert.ok(Array.isArray(dto.attachments));
}

for (const transport of ['raw', ...SOCKJS_TRANSPORTS]) {
  const label = transport === 'raw' ? 'raw WebSocket /ws/websocket (v12.stomp)' : `SockJS ${transport}`;

  test(`STOMP over ${label}: SEND /pub/messages and HTTP messages reach every subscriber`, async () => {
    const a = await stompConnected(server, { transport, token: alice.token });
    const b = await stompConnected(server, { transport, token: bob.token });
    try {
      for (const [s, u] of [[a, alice], [b, bob]]) {
        assert.equal(s.connectedFrame.headers.version, '1.2');
        assert.match(s.connectedFrame.headers['heart-beat'], /^\d+,\d+$/);
        assert.equal(s.connectedFrame.headers['user-name'], u.user.username);
      }
      const dest = channelDest(general.id);
      const [ia, ib] = await Promise.all([a.subscribe(dest), b.subscribe(dest)]);

      // Text message over STOMP.
      const content = `hi over ${transport}`;
      a.publish('/pub/messages', { content, channelId: general.id, authorId: alice.id });
      const viaStomp = [];
      for (const inbox of [ia, ib]) {
        const dto = messageDto(await inbox.next(), inbox, dest);
        assertMessageDto(dto, { content, channelId: general.id, author: alice.user });
        assert.deepEqual(dto.attachments, []);
        viaStomp.push(dto);
      }
      assert.deepEqual(viaStomp[0], viaStomp[1], 'both subscribers get the same MessageDto');
      const stored = (await alice.messages(general.id)).find((m) => m.id === viaStomp[0].id);
      assert.deepEqual(stored, viaStomp[0], 'the STOMP message is stored as broadcast');

      // Message with an attachment over HTTP.
      const data = Buffer.from(`attachment for ${transport}`);
      const posted = await alice.postMessage(general.id, 'with file', [
        { name: 'note.txt', type: 'text/plain', data },
      ]);
      for (const inbox of [ia, ib]) {
        const dto = messageDto(await inbox.next(), inbox, dest);
        assertMessageDto(dto, { content: 'with file', channelId: general.id, author: alice.user });
        assert.deepEqual(dto, posted, 'the broadcast equals the HTTP response');
        assert.equal(dto.attachments.length, 1);
        const [att] = dto.attachments;
        assert.match(att.id, UUID);
        assert.equal(att.fileName, 'note.txt');
        assert.equal(att.size, data.length);
        assert.match(att.contentType, /^text\/plain/);
        assert.equal(att.uploadStatus, 'WAITING');
      }

      // After UNSUBSCRIBE bob gets nothing more; alice still does.
      const gone = b.receipt('unsub-1');
      ib.subscription.unsubscribe({ receipt: 'unsub-1' });
      await gone;
      a.publish('/pub/messages', { content: 'after unsubscribe', channelId: general.id, authorId: alice.id });
      const last = messageDto(await ia.next(), ia, dest);
      assert.equal(last.content, 'after unsubscribe');
      await sleep(200);
      assert.equal(ib.items.length, 0, 'no MESSAGE after UNSUBSCRIBE');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
}

test('a message SENT by bob over SockJS reaches alice on the raw WebSocket (mixed transports)', async () => {
  const a = await stompConnected(server, { transport: 'raw', token: alice.token });
  const b = await stompConnected(server, { transport: 'xhr-polling', token: bob.token });
  try {
    const dest = channelDest(general.id);
    const ia = await a.subscribe(dest);
    b.publish('/pub/messages', { content: 'from polling', channelId: general.id, authorId: bob.id });
    const dto = messageDto(await ia.next(), ia, dest);
    assertMessageDto(dto, { content: 'from polling', channelId: general.id, author: bob.user });
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('private channel: its members get its messages; authorId may be omitted', async () => {
  const priv = await alice.createPrivateChannel([alice.id, bob.id]);
  const a = await stompConnected(server, { transport: 'raw', token: alice.token });
  const b = await stompConnected(server, { transport: 'websocket', token: bob.token });
  try {
    const dest = channelDest(priv.id);
    const [ia, ib] = await Promise.all([a.subscribe(dest), b.subscribe(dest)]);
    b.publish('/pub/messages', { content: 'just us', channelId: priv.id });
    for (const inbox of [ia, ib]) {
      const dto = messageDto(await inbox.next(), inbox, dest);
      assertMessageDto(dto, { content: 'just us', channelId: priv.id, author: bob.user });
    }
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('other /sub destinations are a plain broker; client SENDs cannot forge channel messages', async () => {
  const a = await stompConnected(server, { transport: 'raw', token: alice.token });
  const b = await stompConnected(server, { transport: 'xhr-streaming', token: bob.token });
  try {
    const [ia, ib] = await Promise.all([a.subscribe('/sub/e2e.chat'), b.subscribe('/sub/e2e.chat')]);
    b.publish('/sub/e2e.chat', { hello: 'broker' });
    for (const inbox of [ia, ib]) {
      const m = await inbox.next();
      assert.equal(m.headers.destination, '/sub/e2e.chat');
      assert.deepEqual(JSON.parse(m.body), { hello: 'broker' });
    }

    // A forged MessageDto sent straight to a channel destination must not reach its
    // subscribers (the server may refuse it with an ERROR or drop it).
    const dest = channelDest(general.id);
    const watcher = await a.subscribe(dest);
    const forged = { id: '00000000-0000-4000-8000-000000000000', content: 'forged', channelId: general.id };
    const processed = b.receipt('forge');
    b.publish(dest, forged, { receipt: 'forge' });
    await Promise.race([processed, b.error()]);
    const real = await alice.postMessage(general.id, 'genuine');
    const first = messageDto(await watcher.next(), watcher, dest);
    assert.equal(first.id, real.id, 'the first message on the channel is the genuine one');
    await sleep(200);
    assert.deepEqual(watcher.items.map((m) => m.body), [], 'nothing else arrived');
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

// 80 messages of ~2 KB are more than the 128 KiB after which SockJS streaming responses
// (xhr-streaming, eventsource) end and the client re-opens them: nothing may be lost or
// repeated at that seam.
test('a burst of 80 large STOMP messages arrives complete and in order on every transport', async () => {
  const subscribers = await Promise.all(
    ['raw', ...SOCKJS_TRANSPORTS].map((transport) => stompConnected(server, { transport, token: bob.token })),
  );
  const sender = await stompConnected(server, { transport: 'raw', token: alice.token });
  try {
    const dest = channelDest(general.id);
    const inboxes = await Promise.all(subscribers.map((s) => s.subscribe(dest)));
    const contents = Array.from({ length: 80 }, (_, i) => `burst ${i} ${'z'.repeat(1900)}`);
    for (const content of contents) {
      sender.publish('/pub/messages', { content, channelId: general.id, authorId: alice.id });
    }
    for (const [i, inbox] of inboxes.entries()) {
      const got = [];
      for (let n = 0; n < contents.length; n++) got.push(JSON.parse((await inbox.next(10_000)).body).content);
      const short = (list) => list.map((c) => c.slice(0, 9));
      assert.deepEqual(short(got), short(contents), `${subscribers[i].transport}: all 80, in order`);
      assert.deepEqual(got, contents);
    }
  } finally {
    await Promise.all([...subscribers, sender].map((s) => s.close()));
  }
});

test('a STOMP message in a private channel notifies the other member over SSE', async () => {
  const priv = await bob.createPrivateChannel([alice.id, bob.id]);
  const sse = eventSource(server, alice.token);
  const b = await stompConnected(server, { transport: 'xhr-streaming', token: bob.token });
  try {
    await sse.inbox.until((e) => e.type === 'connect');
    b.publish('/pub/messages', { content: 'psst', channelId: priv.id, authorId: bob.id });
    const n = await sse.inbox.until((e) => e.type === 'notifications', 5000, 'notification');
    assert.equal(n.data.receiverId, alice.id);
    assert.equal(n.data.content, 'psst');
    assert.equal(n.data.targetId, priv.id);
    assert.equal(n.data.type, 'NEW_MESSAGE');
  } finally {
    sse.close();
    await b.close();
  }
});

test('raw wire: STOMP command, several frames per message with EOLs and CRLF, NUL in a body, DISCONNECT receipt', async () => {
  const raw = await rawStomp(server);
  assert.equal(raw.protocol, 'v12.stomp');
  raw.send(`STOMP\r\naccept-version:1.1,1.2\r\nhost:localhost\r\nheart-beat:0,0\r\nAuthorization:Bearer ${alice.token}\r\n\r\n\0`);
  const connected = await raw.next();
  assert.equal(connected.command, 'CONNECTED');
  assert.equal(connected.headers.version, '1.2');
  assert.equal(connected.headers['heart-beat'], '0,0', 'no heart-beats when the client wants none');

  const body = Buffer.from('{"a":"x\0y"}');
  assert.ok(body.includes(0), 'the body carries a NUL byte');
  raw.send(Buffer.concat([
    Buffer.from('\n\r\nSUBSCRIBE\r\nid:s1\r\ndestination:/sub/e2e.wire\r\nreceipt:r1\r\n\r\n\0\n'),
    Buffer.from(`SEND\ndestination:/sub/e2e.wire\ncontent-type:application/octet-stream\ncontent-length:${body.length}\nreceipt:r2\n\n`),
    body,
    Buffer.from('\0\n'),
  ]));
  const got = [await raw.next(), await raw.next(), await raw.next()];
  const receipts = got.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']);
  assert.deepEqual(receipts.sort(), ['r1', 'r2']);
  assert.equal(got[0].command, 'RECEIPT', 'the SUBSCRIBE receipt comes first');
  const msg = got.find((f) => f.command === 'MESSAGE');
  assert.ok(msg, 'MESSAGE delivered');
  assert.equal(msg.headers.destination, '/sub/e2e.wire');
  assert.equal(msg.headers.subscription, 's1');
  assert.ok(msg.headers['message-id']);
  assert.equal(Number(msg.headers['content-length']), body.length);
  assert.deepEqual(msg.body, body, 'body bytes intact, NUL included');

  raw.send('DISCONNECT\nreceipt:bye\n\n\0');
  const bye = await raw.next();
  assert.equal(bye.command, 'RECEIPT');
  assert.equal(bye.headers['receipt-id'], 'bye');
  await raw.closed();
});
