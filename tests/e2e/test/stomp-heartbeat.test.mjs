// STOMP heart-beats as the Discodeit front end requests them (`heart-beat:4000,4000`):
// connections on every transport stay up through 10 s of silence and still work
// (contract: realtime.md §1 "STOMP 1.2"; sockjs `h` frames).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { SOCKJS_TRANSPORTS, sleep, startServer, stompConnected } from '../harness.mjs';

let server;
let alice;
let general;
before(async () => {
  server = await startServer();
  const admin = await server.admin();
  alice = await server.user('alice');
  general = await admin.createPublicChannel('general');
});
after(async () => {
  await server?.stop();
});

test('heart-beat 4000,4000: every transport gets the negotiated server heart-beats, stays open while idle, then delivers', async () => {
  const transports = ['raw', ...SOCKJS_TRANSPORTS];
  const clients = await Promise.all(
    transports.map((transport) => stompConnected(server, { transport, token: alice.token, heartbeat: 4000 })),
  );
  try {
    const dest = `/sub/channels.${general.id}.messages`;
    const inboxes = await Promise.all(clients.map((c) => c.subscribe(dest)));
    // STOMP 1.2 negotiation: the server sends heart-beats every max(4000, sx) ms (sx = 0:
    // none) and expects ours every max(4000, sy) ms (sy = 0: none).
    let silence = 11_500;
    for (const c of clients) {
      const [sx, sy] = c.connectedFrame.headers['heart-beat'].split(',').map(Number);
      assert.ok(sx === 0 || sx <= 20_000, `${c.transport}: server heart-beat every ${sx} ms is too rare for this test`);
      assert.ok(sy === 0 || sy >= 4000, `${c.transport}: expects client heart-beats every ${sy} ms`);
      if (sx > 0) silence = Math.max(silence, Math.max(sx, 4000) + 1500);
    }
    await sleep(silence);
    for (const c of clients) {
      assert.equal(c.isClosed, false, `${c.transport} is still open after ${silence} ms without traffic`);
      const [sx] = c.connectedFrame.headers['heart-beat'].split(',').map(Number);
      if (sx > 0) assert.ok(c.pongs >= 1, `${c.transport}: server heart-beats received: ${c.pongs}`);
    }
    const posted = await alice.postMessage(general.id, 'after the silence');
    for (const [i, inbox] of inboxes.entries()) {
      const m = await inbox.next();
      assert.equal(JSON.parse(m.body).id, posted.id, `${transports[i]} delivers after idling`);
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});
