// Test harness for the end-to-end suite: runs the real `discodeit` binary on a fresh
// PostgreSQL database and gives tests browser-like clients for REST, STOMP and SSE.
//
// Environment (as exported by scripts/test.sh):
//   DISCODEIT_BIN            server binary (default ../../target/debug/discodeit)
//   DISCODEIT_PG_ADMIN_URL   PostgreSQL admin URL used to create/drop the test databases
//   E2E_SERVER_LOG=1         forward the server's stderr (otherwise kept: `server.log()`)
//   E2E_RUST_LOG, E2E_STOMP_DEBUG=1   server log level; stompjs trace

import { spawn, execFile } from 'node:child_process';
import { randomBytes, createHmac } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { Client as StompClient } from '@stomp/stompjs';
import SockJS from 'sockjs-client';
import WebSocket from 'ws';
import { EventSource } from 'eventsource';

const here = path.dirname(fileURLToPath(import.meta.url));
const execFileP = promisify(execFile);

export const ADMIN = { username: 'admin', email: 'admin@discodeit.test', password: 'admin1234!' };
export const PASSWORD = 'p@ssw0rd1';
export const SECRET = 'e2e-secret-e2e-secret-e2e-secret-0123456789';

const serverBin = () =>
  process.env.DISCODEIT_BIN || path.resolve(here, '../../target/debug/discodeit');
const pgAdminUrl = () =>
  process.env.DISCODEIT_PG_ADMIN_URL || 'postgres://postgres@127.0.0.1:55432/postgres';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A promise with its resolve/reject exposed. */
export function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejects with `what` after `ms` unless `p` settles first. */
export function within(p, ms, what) {
  let timer;
  const timeout = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A queue of received items that tests await one by one, in arrival order. */
export class Inbox {
  constructor(name = 'inbox') {
    this.name = name;
    this.items = [];
    this.waiters = [];
    this.all = [];
  }
  push(item) {
    this.all.push(item);
    const w = this.waiters.shift();
    if (w) w(item);
    else this.items.push(item);
  }
  /** The next item (waits up to `ms`). */
  next(ms = 5000) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    const d = deferred();
    this.waiters.push(d.resolve);
    return within(d.promise, ms, `${this.name}: next item`).catch((e) => {
      this.waiters = this.waiters.filter((w) => w !== d.resolve);
      throw e;
    });
  }
  /** Skips items until one matches `pred`; returns it (waits up to `ms` in total). */
  async until(pred, ms = 5000, what = 'matching item') {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms: ${this.name}: ${what}`);
      const item = await this.next(left).catch(() => {
        throw new Error(`timed out after ${ms} ms: ${this.name}: ${what}`);
      });
      if (pred(item)) return item;
    }
  }
}

// ------------------------------------------------------------------ server ----

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function psql(sql) {
  await execFileP('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', pgAdminUrl(), '-c', sql]);
}

/** Drops a test database in a detached psql: DROP DATABASE waits for a checkpoint (seconds
 * on a busy cluster), so it finishes on its own after the test process has exited. */
function dropDatabaseLater(db) {
  spawn('psql', ['-X', '-q', pgAdminUrl(), '-c', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`], {
    detached: true,
    stdio: 'ignore',
  }).unref();
}

/** Servers still running (child → database), killed if the test process exits early. */
const running = new Map();
const killAll = () => {
  for (const [child, db] of running) {
    child.kill('SIGKILL');
    dropDatabaseLater(db);
  }
  running.clear();
};
process.on('exit', killAll);
// The test runner stops a file that timed out with a signal, which skips 'exit' handlers.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.once(sig, () => {
    killAll();
    process.kill(process.pid, sig);
  });
}

/**
 * Starts the server binary on a free port with a fresh database; resolves once
 * `GET /actuator/health` answers 200. `env` adds or overrides environment variables.
 */
export async function startServer({ env = {} } = {}) {
  const db = `e2e_${randomBytes(8).toString('hex')}`;
  await psql(`CREATE DATABASE ${db}`);
  const base = pgAdminUrl().replace(/\/[^/]*$/, '');
  const port = await freePort();
  const storage = fs.mkdtempSync(path.join(os.tmpdir(), 'discodeit-e2e-'));
  const child = spawn(serverBin(), [], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: `${base}/${db}`,
      DATABASE_POOL_SIZE: '8',
      SECURITY_JWT_SECRET: SECRET,
      DISCODEIT_ADDR: `127.0.0.1:${port}`,
      // Metrics and health on an ephemeral port: several servers run at once.
      DISCODEIT_ADMIN_ADDR: '127.0.0.1:0',
      DISCODEIT_STORAGE_DIR: storage,
      DISCODEIT_INSTANCE_ID: `e2e-${port}`,
      DISCODEIT_ADMIN_USERNAME: ADMIN.username,
      DISCODEIT_ADMIN_EMAIL: ADMIN.email,
      DISCODEIT_ADMIN_PASSWORD: ADMIN.password,
      RUST_LOG: process.env.E2E_RUST_LOG || 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.set(child, db);
  const log = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    if (process.env.E2E_SERVER_LOG) process.stderr.write(`[server ${port}] ${chunk}`);
    log.push(chunk);
    if (log.length > 400) log.splice(0, log.length - 400);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let stopped = false;

  const server = {
    port,
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    sockjsUrl: `http://127.0.0.1:${port}/ws`,
    rawWsUrl: `ws://127.0.0.1:${port}/ws/websocket`,
    db,
    log: () => log.join(''),
    client: () => new Api(server.url),
    /** A signed-up, logged-in user client named `<prefix>_<random>`. */
    async user(prefix = 'u') {
      const api = new Api(server.url);
      await api.register(`${prefix}_${randomBytes(4).toString('hex')}`);
      return api;
    },
    /** A logged-in admin client. */
    async admin() {
      const api = new Api(server.url);
      await api.login(ADMIN.username, ADMIN.password);
      return api;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // Like the Rust harness: no graceful shutdown, the database is dropped anyway.
      child.kill('SIGKILL');
      await exited;
      running.delete(child);
      fs.rmSync(storage, { recursive: true, force: true });
      dropDatabaseLater(db);
    },
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    const early = await Promise.race([exited, sleep(50).then(() => null)]);
    if (early) {
      running.delete(child);
      dropDatabaseLater(db);
      throw new Error(`server exited during start-up (${JSON.stringify(early)}):\n${server.log()}`);
    }
    try {
      const r = await fetch(`${server.url}/actuator/health`);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`server not healthy within 30 s:\n${server.log()}`);
    }
  }
  return server;
}

/** True when the server answers `GET /ws/info` with 200 (the STOMP endpoint exists). */
export async function wsAvailable(server) {
  try {
    const r = await fetch(`${server.url}/ws/info`);
    return r.status === 200;
  } catch {
    return false;
  }
}

// -------------------------------------------------------------------- REST ----

/** The payload of a JWT, decoded. */
export function jwtPayload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** A well-formed HS256 JWT with `payload`, signed with `secret`. */
export function signJwt(payload, secret) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc({ alg: 'HS256' })}.${enc(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** JSON part sent the way the front end sends it: a Blob, i.e. filename "blob". */
const jsonBlob = (v) => new Blob([JSON.stringify(v)], { type: 'application/json' });

/**
 * A browser-like REST client: cookie jar (XSRF-TOKEN, refresh_token), `X-XSRF-TOKEN`
 * from the cookie on every request, `Authorization: Bearer` once logged in.
 */
export class Api {
  constructor(base) {
    this.base = base;
    this.cookies = new Map();
    this.token = null;
    this.user = null;
  }

  get id() {
    return this.user?.id;
  }

  _absorbCookies(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v = ''] = a.split('=').map((s) => s.trim());
        if (/^max-age$/i.test(k)) return Number(v) <= 0;
        if (/^expires$/i.test(k)) return Date.parse(v) < Date.now();
        return false;
      });
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  /**
   * Sends a request; `json` or `form` (FormData) becomes the body.
   * Resolves to `{status, headers, body}` (`body` parsed as JSON when it is JSON).
   */
  async request(method, p, { json, form, headers = {}, auth = true } = {}) {
    const h = { ...headers };
    if (auth && this.token) h.Authorization = `Bearer ${this.token}`;
    const xsrf = this.cookies.get('XSRF-TOKEN');
    if (xsrf) h['X-XSRF-TOKEN'] = xsrf;
    if (this.cookies.size) {
      h.Cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    }
    let body;
    if (json !== undefined) {
      h['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    const res = await fetch(this.base + p, { method, headers: h, body, redirect: 'manual' });
    this._absorbCookies(res);
    const text = await res.text();
    let parsed = text;
    if (/json/.test(res.headers.get('content-type') || '') && text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        // keep the text
      }
    }
    return { status: res.status, headers: res.headers, body: parsed };
  }

  async expect(status, method, p, opts) {
    const r = await this.request(method, p, opts);
    if (r.status !== status) {
      throw new Error(`${method} ${p}: expected ${status}, got ${r.status}: ${JSON.stringify(r.body)}`);
    }
    return r.body;
  }

  get(p) {
    return this.expect(200, 'GET', p);
  }

  async csrf() {
    return (await this.expect(200, 'GET', '/api/auth/csrf-token')).token;
  }

  async signup(username, { email = `${username}@example.com`, password = PASSWORD } = {}) {
    await this.csrf();
    const form = new FormData();
    form.append('userCreateRequest', jsonBlob({ username, email, password }));
    return this.expect(201, 'POST', '/api/users', { form });
  }

  /** Logs in; keeps and returns the access token. */
  async login(username, password = PASSWORD) {
    await this.csrf();
    const token = await this.expect(200, 'POST', '/api/auth/login', { json: { username, password } });
    if (typeof token !== 'string') throw new Error(`login: expected a JSON string, got ${JSON.stringify(token)}`);
    this.token = token;
    this.user = jwtPayload(token).userDto;
    await this.csrf();
    return token;
  }

  async logout() {
    await this.expect(200, 'POST', '/api/auth/logout');
    this.token = null;
  }

  async register(username) {
    await this.signup(username);
    await this.login(username);
    return this.user;
  }

  createPublicChannel(name, description = 'e2e') {
    return this.expect(201, 'POST', '/api/channels/public', { json: { name, description } });
  }

  createPrivateChannel(participantIds) {
    return this.expect(201, 'POST', '/api/channels/private', { json: { participantIds } });
  }

  /** `POST /api/messages` as the front end sends it; `files` = [{name, type, data}]. */
  postMessage(channelId, content, files = [], authorId = this.id) {
    const form = new FormData();
    form.append('messageCreateRequest', jsonBlob({ content, channelId, authorId }));
    for (const f of files) {
      form.append('attachments', new Blob([f.data], { type: f.type }), f.name);
    }
    return this.expect(201, 'POST', '/api/messages', { form });
  }

  async messages(channelId) {
    return (await this.get(`/api/messages?channelId=${channelId}&size=50`)).content;
  }
}

// ------------------------------------------------------------------- STOMP ----

/**
 * SockJS transports that sockjs-client can use in Node (websocket via faye-websocket, the
 * xhr ones via node:http, eventsource via its bundled `eventsource` package). htmlfile,
 * jsonp-polling and the iframe-* variants need a DOM and are left to the sockjs-protocol
 * suite, which drives them over plain HTTP.
 */
export const SOCKJS_TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];

/**
 * A @stomp/stompjs client over `transport` ('raw' = plain WebSocket at /ws/websocket with
 * subprotocol v12.stomp via the `ws` package, otherwise a SockJS transport name).
 * No auto-reconnect. Exposes promises for CONNECTED, the first ERROR and the close.
 */
export function stomp(server, { transport = 'raw', token, connectHeaders, heartbeat = 4000 } = {}) {
  const connected = deferred();
  const error = deferred();
  const closed = deferred();
  const errors = [];
  let isClosed = false;
  let pongs = 0;
  let closeEvent = null;
  const state = () =>
    isClosed ? `closed without it (code ${closeEvent?.code}, ${closeEvent?.reason || 'no reason'})` : 'still open';
  const client = new StompClient({
    webSocketFactory: () =>
      transport === 'raw'
        ? new WebSocket(server.rawWsUrl, ['v12.stomp'])
        : // `timeout`: sockjs-client otherwise gives a transport ~2 round trips of the /info
          // request to open, too little on a loaded 2-core test machine.
          new SockJS(server.sockjsUrl, null, { transports: [transport], timeout: 10_000 }),
    connectHeaders: connectHeaders ?? (token ? { Authorization: `Bearer ${token}` } : {}),
    heartbeatIncoming: heartbeat,
    heartbeatOutgoing: heartbeat,
    reconnectDelay: 0,
    debug: (m) => {
      // stompjs reports each heart-beat received from the server this way.
      if (m === '<<< PONG') pongs += 1;
      if (process.env.E2E_STOMP_DEBUG) console.error(`[stomp ${transport}] ${m}`);
    },
    onConnect: (frame) => connected.resolve(frame),
    onStompError: (frame) => {
      errors.push(frame);
      error.resolve(frame);
      connected.reject(new Error(`STOMP ERROR: ${frame.headers.message} ${frame.body}`));
    },
    onWebSocketClose: (evt) => {
      isClosed = true;
      closeEvent = evt;
      // Clears stompjs' timers (connection timeout) so the test process can exit.
      client.deactivate().catch(() => {});
      closed.resolve(evt);
      connected.reject(new Error(`socket closed before CONNECTED (code ${evt?.code})`));
    },
  });
  // Unobserved rejections are expected in refusal tests.
  connected.promise.catch(() => {});
  client.activate();

  let seq = 0;
  return {
    client,
    transport,
    errors,
    get isClosed() {
      return isClosed;
    },
    /** Heart-beats received from the server so far. */
    get pongs() {
      return pongs;
    },
    connected: (ms = 10_000) => within(connected.promise, ms, `${transport}: CONNECTED`),
    error: (ms = 5000) => within(error.promise, ms, `${transport}: ERROR frame`).catch((e) => {
      throw new Error(`${e.message}; connection ${state()}`);
    }),
    closed: (ms = 5000) => within(closed.promise, ms, `${transport}: connection closed`),
    /** Waits for a RECEIPT with `id`. */
    receipt(id, ms = 5000) {
      const d = deferred();
      client.watchForReceipt(id, (f) => d.resolve(f));
      return within(d.promise, ms, `${transport}: RECEIPT ${id}`);
    },
    /** SUBSCRIBEs with a receipt and resolves once the server confirmed it. */
    async subscribe(destination, ms = 5000) {
      const inbox = new Inbox(`${transport} ${destination}`);
      const receipt = `sub-${++seq}`;
      const got = this.receipt(receipt, ms);
      const sub = client.subscribe(destination, (m) => inbox.push(m), { receipt });
      await got;
      inbox.subscription = sub;
      return inbox;
    },
    /** SUBSCRIBE without waiting (for refusals). */
    subscribeNoWait(destination) {
      const inbox = new Inbox(`${transport} ${destination}`);
      client.subscribe(destination, (m) => inbox.push(m));
      return inbox;
    },
    publish(destination, body, headers = {}) {
      client.publish({
        destination,
        body: typeof body === 'string' ? body : JSON.stringify(body),
        headers: { 'content-type': 'application/json', ...headers },
      });
    },
    async close() {
      await client.deactivate({ force: false }).catch(() => {});
    },
  };
}

/** Connects, failing the test with the ERROR text if the server refuses. */
export async function stompConnected(server, opts) {
  const s = stomp(server, opts);
  const frame = await s.connected();
  return Object.assign(s, { connectedFrame: frame });
}

/** Decodes a STOMP 1.2 header value (`\\r \\n \\c \\\\`). */
const unescapeHeader = (v) =>
  v.replace(/\\([rnc\\])/g, (_, c) => ({ r: '\r', n: '\n', c: ':', '\\': '\\' })[c]);

/**
 * Parses every complete STOMP frame at the start of `buf` (heart-beat EOLs skipped,
 * `content-length` honoured); returns the frames and the unparsed rest.
 */
export function parseStompFrames(buf) {
  const frames = [];
  for (;;) {
    let i = 0;
    while (i < buf.length && (buf[i] === 0x0a || (buf[i] === 0x0d && buf[i + 1] === 0x0a))) {
      i += buf[i] === 0x0d ? 2 : 1;
    }
    buf = buf.subarray(i);
    const end = buf.indexOf('\n\n');
    const endCrlf = buf.indexOf('\r\n\r\n');
    let headEnd;
    let sep;
    if (endCrlf >= 0 && (end < 0 || endCrlf < end)) [headEnd, sep] = [endCrlf, 4];
    else if (end >= 0) [headEnd, sep] = [end, 2];
    else return { frames, rest: buf };
    const [command, ...lines] = buf.subarray(0, headEnd).toString('utf8').split(/\r?\n/);
    const headers = {};
    for (const l of lines) {
      const c = l.indexOf(':');
      if (c <= 0) continue;
      const k = l.slice(0, c);
      const escaped = command !== 'CONNECTED' && command !== 'CONNECT';
      if (!(k in headers)) headers[k] = escaped ? unescapeHeader(l.slice(c + 1)) : l.slice(c + 1);
    }
    const bodyStart = headEnd + sep;
    let bodyEnd;
    if (headers['content-length'] !== undefined) {
      bodyEnd = bodyStart + Number(headers['content-length']);
      if (buf.length <= bodyEnd) return { frames, rest: buf };
    } else {
      bodyEnd = buf.indexOf(0, bodyStart);
      if (bodyEnd < 0) return { frames, rest: buf };
    }
    frames.push({ command, headers, body: buf.subarray(bodyStart, bodyEnd) });
    buf = buf.subarray(bodyEnd + 1);
  }
}

/**
 * A bare `ws` socket on /ws/websocket with subprotocol v12.stomp, for exact wire-level
 * checks: `send` writes text or bytes as one WebSocket message, `frames` receives parsed
 * STOMP frames `{command, headers, body: Buffer}` (heart-beats skipped).
 */
export async function rawStomp(server) {
  const ws = new WebSocket(server.rawWsUrl, ['v12.stomp']);
  const frames = new Inbox('raw STOMP');
  const closed = deferred();
  let pending = Buffer.alloc(0);
  ws.on('message', (data) => {
    const parsed = parseStompFrames(Buffer.concat([pending, Buffer.from(data)]));
    pending = parsed.rest;
    parsed.frames.forEach((f) => frames.push(f));
  });
  ws.on('close', (code) => closed.resolve(code));
  ws.on('error', () => {});
  await within(new Promise((r, j) => (ws.once('open', r), ws.once('error', j))), 5000, 'ws open');
  return {
    ws,
    frames,
    protocol: ws.protocol,
    send: (data) => ws.send(data),
    next: (ms = 5000) => frames.next(ms),
    closed: (ms = 5000) => within(closed.promise, ms, 'raw socket closed'),
    close: () => ws.close(),
    /** Sends CONNECT with `token` and returns the CONNECTED frame. */
    async connect(token, extra = '') {
      ws.send(`CONNECT\naccept-version:1.2\nhost:localhost\nAuthorization:Bearer ${token}\n${extra}\n\0`);
      return frames.next();
    },
  };
}

// --------------------------------------------------------------------- SSE ----

/** Event names the server sends on /api/sse. */
export const SSE_EVENTS = [
  'connect',
  'reset',
  'ping',
  'notifications',
  'channels.refresh',
  'users.refresh',
  'binaryContents.status',
];

/**
 * The `eventsource` npm client on /api/sse with the Bearer header (added through its `fetch`
 * option, as the front end's polyfill sends headers). Every event lands in `inbox` as
 * `{type, id, data}` with `data` parsed.
 */
export function eventSource(server, token, { query = '', headers = {} } = {}) {
  const inbox = new Inbox('EventSource');
  const errors = new Inbox('EventSource errors');
  const opened = deferred();
  const es = new EventSource(`${server.url}/api/sse${query}`, {
    fetch: (input, init) =>
      fetch(input, {
        ...init,
        headers: { ...init.headers, ...headers, Authorization: `Bearer ${token}` },
      }),
  });
  const onEvent = (e) => {
    let data = e.data;
    try {
      data = JSON.parse(e.data);
    } catch {
      // not JSON
    }
    inbox.push({ type: e.type, id: e.lastEventId, data });
  };
  for (const name of SSE_EVENTS) es.addEventListener(name, onEvent);
  es.onmessage = onEvent;
  es.onopen = () => opened.resolve();
  es.onerror = (e) => errors.push(e);
  return {
    es,
    inbox,
    errors,
    opened: (ms = 5000) => within(opened.promise, ms, 'EventSource open'),
    close: () => es.close(),
  };
}

/**
 * A plain fetch-based SSE reader: keeps the response headers and every event, whatever its
 * name, as `{type, id, data}`, and comment lines in `comments`. `done` resolves when the server ends
 * the stream.
 */
export async function sseStream(server, token, { query = '', headers = {} } = {}) {
  const ctrl = new AbortController();
  const h = { Accept: 'text/event-stream', ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  const res = await fetch(`${server.url}/api/sse${query}`, { headers: h, signal: ctrl.signal });
  const inbox = new Inbox('SSE');
  const stream = { status: res.status, headers: res.headers, inbox, comments: [], close: () => ctrl.abort() };
  if (res.status !== 200) {
    stream.body = await res.text();
    stream.done = Promise.resolve();
    return stream;
  }
  const decoder = new TextDecoder();
  stream.done = (async () => {
    let buf = '';
    let ev = { type: 'message', id: undefined, data: [] };
    try {
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk, { stream: true });
        let nl;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (ev.data.length || ev.type !== 'message') {
              const raw = ev.data.join('\n');
              let data = raw;
              try {
                data = JSON.parse(raw);
              } catch {
                // not JSON
              }
              inbox.push({ type: ev.type, id: ev.id, data });
            }
            ev = { type: 'message', id: undefined, data: [] };
            continue;
          }
          if (line.startsWith(':')) {
            stream.comments.push({ at: Date.now(), text: line.slice(1) });
            continue;
          }
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'event') ev.type = value;
          else if (field === 'data') ev.data.push(value);
          else if (field === 'id') ev.id = value;
        }
      }
    } catch {
      // aborted or reset
    }
  })();
  return stream;
}
