// CONNECT with an expired access token: accepted while its login session is active (the
// front end reconnects with the token it first connected with) and within the configured grace,
// refused once the session ended (contract: realtime.md §1 "Authentication and authorization").

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { jwtPayload, sleep, startServer, stomp, stompConnected } from '../harness.mjs';

let server;
before(async () => {
  // The grace for expired tokens defaults to one access-token lifetime (2 s here), which the
  // steps below may outlast on a busy machine: give it a minute (the bound itself is tested in
  // tests/session_life.rs).
  server = await startServer({
    env: { SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS: '2', DISCODEIT_STOMP_EXPIRED_TOKEN_GRACE_SECONDS: '60' },
  });
});
after(async () => {
  await server?.stop();
});

/** Sleeps until `token` has expired (exp is in whole seconds). */
async function untilExpired(token) {
  const wait = (jwtPayload(token).exp + 1) * 1000 - Date.now();
  if (wait > 0) await sleep(wait);
}

test('expired token of an active session connects; of a logged-out or replaced session it is refused', async () => {
  const admin = await server.admin();
  const general = await admin.createPublicChannel('general');
  const [alice, bob] = await Promise.all([server.user('alice'), server.user('bob')]);
  const aliceToken = alice.token;
  const bobOld = bob.token;
  await bob.login(bob.user.username); // replaces bob's first session
  const bobNew = bob.token;
  await untilExpired(bobNew);

  const rest = await alice.request('GET', '/api/users');
  assert.equal(rest.status, 401, 'precondition: the access token has expired');

  const dest = `/sub/channels.${general.id}.messages`;
  for (const transport of ['raw', 'xhr-streaming']) {
    const s = await stompConnected(server, { transport, token: aliceToken });
    try {
      const inbox = await s.subscribe(dest);
      s.publish('/pub/messages', { content: `late ${transport}`, channelId: general.id, authorId: alice.id });
      assert.equal(JSON.parse((await inbox.next()).body).content, `late ${transport}`);
    } finally {
      await s.close();
    }
  }
  const b = await stompConnected(server, { transport: 'raw', token: bobNew });
  await b.close();

  const replaced = stomp(server, { transport: 'raw', token: bobOld });
  const e1 = await replaced.error();
  assert.ok(e1.headers.message, 'replaced session: ERROR message header');
  await replaced.closed();

  await alice.logout();
  for (const transport of ['raw', 'xhr-streaming']) {
    const s = stomp(server, { transport, token: aliceToken });
    const e = await s.error();
    assert.ok(e.headers.message, `logged out (${transport}): ERROR message header`);
    await s.closed();
  }
});
