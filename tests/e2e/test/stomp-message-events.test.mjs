// `/sub/channels.{id}.message-events` with real STOMP clients (realtime.md §1 "Destinations"):
// members get `{"type":"updated","message":MessageDto}` after an edit and
// `{"type":"deleted","messageId","channelId"}` after a deletion; outsiders of a private channel
// are refused; `/sub/channels.{id}.messages` keeps carrying new MessageDtos only (the course
// front end's contract).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startServer, stomp, stompConnected } from '../harness.mjs';

let server;
let admin;
let alice;
let bob;
let carol;
let general; // public
let secret; // private: bob and carol
before(async () => {
  server = await startServer();
  [admin, alice, bob, carol] = await Promise.all([
    server.admin(),
    server.user('alice'),
    server.user('bob'),
    server.user('carol'),
  ]);
  general = await admin.createPublicChannel('general');
  secret = await bob.createPrivateChannel([bob.id, carol.id]);
});
after(async () => {
  await server?.stop();
});

const messagesDest = (id) => `/sub/channels.${id}.messages`;
const eventsDest = (id) => `/sub/channels.${id}.message-events`;
const json = (m) => JSON.parse(m.body);

const edit = (api, id, newContent) => api.expect(200, 'PATCH', `/api/messages/${id}`, { json: { newContent } });
const remove = (api, id) => api.expect(204, 'DELETE', `/api/messages/${id}`);

for (const transport of ['raw', 'websocket', 'xhr-streaming']) {
  test(`${transport}: members of a public channel get edits and deletions, .messages only new messages`, async () => {
    const s = await stompConnected(server, { transport, token: carol.token });
    try {
      const created = await s.subscribe(messagesDest(general.id));
      const events = await s.subscribe(eventsDest(general.id));

      const m = await alice.postMessage(general.id, `draft over ${transport}`);
      assert.equal(json(await created.next()).id, m.id);

      const edited = await edit(alice, m.id, `final over ${transport}`);
      const updated = await events.next();
      assert.equal(updated.headers.destination, eventsDest(general.id));
      assert.match(updated.headers['content-type'], /^application\/json/);
      assert.deepEqual(json(updated), { type: 'updated', message: edited });
      assert.equal(edited.content, `final over ${transport}`);
      assert.equal(edited.createdAt, m.createdAt);
      assert.notEqual(edited.updatedAt, m.updatedAt, 'updatedAt moves on edit');

      await remove(alice, m.id);
      assert.deepEqual(json(await events.next()), { type: 'deleted', messageId: m.id, channelId: general.id });

      // A barrier: the next frame on .messages is the next new message, so the edit and the
      // deletion never went there; and nothing else came on .message-events.
      const barrier = await bob.postMessage(general.id, 'barrier');
      assert.equal(json(await created.next()).id, barrier.id);
      assert.deepEqual(created.all.map((x) => json(x).id), [m.id, barrier.id]);
      assert.equal(events.all.length, 2);
    } finally {
      await s.close();
    }
  });
}

test('an admin deleting someone else\'s message is broadcast too', async () => {
  const s = await stompConnected(server, { transport: 'raw', token: bob.token });
  try {
    const events = await s.subscribe(eventsDest(general.id));
    const m = await alice.postMessage(general.id, 'moderated');
    await remove(admin, m.id);
    assert.deepEqual(json(await events.next()), { type: 'deleted', messageId: m.id, channelId: general.id });
  } finally {
    await s.close();
  }
});

test('refused edits and deletions (not the author, not an admin) broadcast nothing', async () => {
  const s = await stompConnected(server, { transport: 'raw', token: carol.token });
  try {
    const events = await s.subscribe(eventsDest(general.id));
    const m = await alice.postMessage(general.id, 'mine');
    await bob.expect(403, 'PATCH', `/api/messages/${m.id}`, { json: { newContent: 'not yours' } });
    await bob.expect(403, 'DELETE', `/api/messages/${m.id}`);
    // Even an admin may not edit someone else's message (only delete it).
    await admin.expect(403, 'PATCH', `/api/messages/${m.id}`, { json: { newContent: 'admin edit' } });
    await alice.expect(400, 'PATCH', `/api/messages/${m.id}`, { json: { newContent: '   ' } });
    const ok = await edit(alice, m.id, 'mine, edited');
    const first = json(await events.next());
    assert.equal(first.type, 'updated');
    assert.deepEqual(first.message, ok, 'the first event is the accepted edit');
  } finally {
    await s.close();
  }
});

test('members of a private channel get its events', async () => {
  const s = await stompConnected(server, { transport: 'websocket', token: carol.token });
  try {
    const events = await s.subscribe(eventsDest(secret.id));
    const m = await bob.postMessage(secret.id, 'between us');
    const edited = await edit(bob, m.id, 'between us (edited)');
    assert.deepEqual(json(await events.next()), { type: 'updated', message: edited });
    await remove(bob, m.id);
    assert.deepEqual(json(await events.next()), { type: 'deleted', messageId: m.id, channelId: secret.id });
  } finally {
    await s.close();
  }
});

for (const transport of ['raw', 'xhr-streaming']) {
  test(`${transport}: an outsider of a private channel is refused its message-events`, async () => {
    const s = await stompConnected(server, { transport, token: alice.token });
    const dest = eventsDest(secret.id);
    const inbox = s.subscribeNoWait(dest);
    const err = await s.error();
    assert.ok(err.headers.message, 'ERROR has a message header');
    assert.ok(`${err.headers.message}\n${err.body}`.includes(dest), 'the ERROR names the destination');
    await s.closed();
    // Events of the channel never reach the refused client.
    const m = await bob.postMessage(secret.id, 'still secret');
    await remove(bob, m.id);
    assert.equal(inbox.all.length, 0);
  });
}

test('SEND to a message-events destination is refused: only the server writes there', async () => {
  const s = await stompConnected(server, { transport: 'raw', token: alice.token });
  const dest = eventsDest(general.id);
  s.publish(dest, { type: 'deleted', messageId: '00000000-0000-4000-8000-000000000000', channelId: general.id });
  const err = await s.error();
  assert.ok(`${err.headers.message}\n${err.body}`.includes(dest), 'the ERROR names the destination');
  await s.closed();
});

test('message-events of a channel that does not exist are refused', async () => {
  const s = stomp(server, { transport: 'raw', token: alice.token });
  await s.connected();
  s.subscribeNoWait(eventsDest('00000000-0000-4000-8000-000000000000'));
  const err = await s.error();
  assert.match(`${err.headers.message}\n${err.body}`, /channel|not found|denied/i);
  await s.closed();
});
