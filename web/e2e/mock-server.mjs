#!/usr/bin/env node
/**
 * In-memory test double of the discodeit server (REST + CSRF + JWT + SSE + SockJS/STOMP) that
 * follows /work/shared/spec closely enough to exercise the web client and its e2e tests without
 * the Rust server. It is NOT the product: the real server lives in the Rust crate.
 *
 *   node e2e/mock-server.mjs [--port 8080] [--dist dist]
 *   env: MOCK_ADMIN_USERNAME / MOCK_ADMIN_PASSWORD (default admin / Admin!2345),
 *        MOCK_ACCESS_TTL (seconds, default 600)
 *   POST /__mock/restart drops every connection and stops listening for ~1.5 s (state is kept,
 *   like a restarted server with a database), to test reconnects.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const PORT = Number(arg('port', process.env.PORT || 8080));
const DIST = resolve(arg('dist', join(here, '..', 'dist')));
const SECRET = 'mock-secret-mock-secret-mock-secret!!';
const ACCESS_TTL = Number(process.env.MOCK_ACCESS_TTL || 600);
const UPLOAD_DELAY = Number(process.env.MOCK_UPLOAD_DELAY_MS || 400);
const MIN_INSTANT = '-1000000000-01-01T00:00:00Z';

// ---- state ------------------------------------------------------------------------------------
const users = new Map(); // id -> {id, username, email, password, role, profileId}
const binaries = new Map(); // id -> {id, fileName, size, contentType, uploadStatus, bytes}
const channels = new Map(); // id -> {id, type, name, description, createdAt}
const messages = []; // {id, createdAt, updatedAt, content, channelId, authorId, attachmentIds}
const readStatuses = new Map(); // id -> {id, userId, channelId, lastReadAt, notificationEnabled}
const notifications = []; // NotificationDto
const sessions = new Map(); // userId -> {access, refresh, exp}
const revoked = new Set();

let lastMicros = 0;
function now() {
  // microsecond instants printed the Java way
  let us = Date.now() * 1000;
  if (us <= lastMicros) us = lastMicros + 1;
  lastMicros = us;
  const ms = Math.floor(us / 1000);
  const base = new Date(ms).toISOString().slice(0, 19);
  const frac = String(us % 1_000_000).padStart(6, '0');
  return `${base}.${frac.replace(/000$/, '')}Z`;
}

function addUser(username, email, password, role = 'USER') {
  const u = { id: randomUUID(), username, email, password, role, profileId: null };
  users.set(u.id, u);
  return u;
}
addUser(process.env.MOCK_ADMIN_USERNAME || 'admin', 'admin@example.com', process.env.MOCK_ADMIN_PASSWORD || 'Admin!2345', 'ADMIN');

const binDto = (id) => {
  const b = binaries.get(id);
  return b ? { id: b.id, fileName: b.fileName, size: b.size, contentType: b.contentType, uploadStatus: b.uploadStatus } : null;
};
const isOnline = (uid) => {
  const s = sessions.get(uid);
  return !!s && s.exp * 1000 > Date.now();
};
const userDto = (u, withOnline = false) =>
  u && {
    id: u.id,
    username: u.username,
    email: u.email,
    profile: u.profileId ? binDto(u.profileId) : null,
    online: withOnline ? isOnline(u.id) : null,
    role: u.role,
  };
const members = (cid) => [...readStatuses.values()].filter((r) => r.channelId === cid).map((r) => r.userId);
const channelDto = (c) => {
  const last = messages.filter((m) => m.channelId === c.id).at(-1);
  return {
    id: c.id,
    type: c.type,
    name: c.name,
    description: c.description,
    participants: c.type === 'PRIVATE' ? members(c.id).map((id) => userDto(users.get(id))) : [],
    lastMessageAt: last ? last.createdAt : MIN_INSTANT,
  };
};
const messageDto = (m) => ({
  id: m.id,
  createdAt: m.createdAt,
  updatedAt: m.updatedAt,
  content: m.content,
  channelId: m.channelId,
  author: m.authorId ? userDto(users.get(m.authorId)) : null,
  attachments: m.attachmentIds.map(binDto),
});
const canSee = (uid, c) => c.type === 'PUBLIC' || members(c.id).includes(uid);

// ---- JWT ----------------------------------------------------------------------------------------
const b64u = (b) => Buffer.from(b).toString('base64url');
function sign(u, ttl) {
  const iat = Math.floor(Date.now() / 1000);
  const body = b64u(JSON.stringify({ sub: u.username, userDto: userDto(u), iat, exp: iat + ttl, jti: randomUUID() }));
  const head = b64u('{"alg":"HS256"}');
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
function verify(token, allowExpired = false) {
  const [h, p, s] = String(token || '').split('.');
  if (!s) return null;
  if (createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url') !== s) return null;
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  if (!allowExpired && claims.exp * 1000 < Date.now()) return null;
  if (revoked.has(token)) return null;
  return claims;
}
function newSession(u) {
  endSession(u.id);
  const s = { access: sign(u, ACCESS_TTL), refresh: sign(u, 7 * 86400), exp: Math.floor(Date.now() / 1000) + ACCESS_TTL };
  sessions.set(u.id, s);
  return s;
}
function endSession(uid) {
  const s = sessions.get(uid);
  if (!s) return;
  sessions.delete(uid);
  revoked.add(s.access);
  for (const st of sseStreams)
    if (st.userId === uid) {
      sseStreams.delete(st);
      st.res.end();
    }
  for (const c of stompConns) if (c.user?.id === uid) c.close();
  sseEmit('users.refresh', { userId: uid }, null);
}

// ---- SSE ------------------------------------------------------------------------------------------
const sseStreams = new Set(); // {userId, res}
const sseLog = []; // {id, userId|null, event, data}
let sseSeq = 0;
function sseEmit(event, data, userId) {
  const e = { id: `${Date.now().toString(36)}-${String(++sseSeq).padStart(8, '0')}`, userId, event, data: JSON.stringify(data) };
  sseLog.push(e);
  if (sseLog.length > 1000) sseLog.shift();
  for (const st of sseStreams) if (userId === null || st.userId === userId) sseWrite(st.res, e);
}
function sseWrite(res, e) {
  if (res.writableEnded || res.destroyed) return;
  res.write(`id:${e.id}\nevent:${e.event}\ndata:${e.data}\n\n`);
}

// ---- STOMP over SockJS ---------------------------------------------------------------------------
const stompConns = new Set();
function stompFrame(command, headers, body = '') {
  let s = command + '\n';
  for (const [k, v] of Object.entries(headers)) s += `${k}:${v}\n`;
  return s + '\n' + body + '\0';
}
function parseFrames(buf) {
  const frames = [];
  let rest = buf;
  for (;;) {
    rest = rest.replace(/^[\r\n]+/, '');
    const nul = rest.indexOf('\0');
    if (nul < 0) break;
    const raw = rest.slice(0, nul);
    rest = rest.slice(nul + 1);
    const sep = raw.search(/\r?\n\r?\n/);
    const head = sep < 0 ? raw : raw.slice(0, sep);
    const body = sep < 0 ? '' : raw.slice(sep).replace(/^\r?\n\r?\n/, '');
    const lines = head.split(/\r?\n/);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0 && !(l.slice(0, i) in headers)) headers[l.slice(0, i)] = l.slice(i + 1);
    }
    frames.push({ command: lines[0], headers, body });
  }
  return { frames, rest };
}
function broadcastMessage(m) {
  const dest = `/sub/channels.${m.channelId}.messages`;
  const body = JSON.stringify(messageDto(m));
  for (const c of stompConns)
    for (const [sid, d] of c.subs)
      if (d === dest)
        c.send(stompFrame('MESSAGE', { destination: dest, subscription: sid, 'message-id': randomUUID(), 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, body));
}
/** Edits and deletions go to `/sub/channels.{id}.message-events`, never to `.messages`. */
function broadcastMessageEvent(channelId, event) {
  const dest = `/sub/channels.${channelId}.message-events`;
  const body = JSON.stringify(event);
  for (const c of stompConns)
    for (const [sid, d] of c.subs)
      if (d === dest)
        c.send(stompFrame('MESSAGE', { destination: dest, subscription: sid, 'message-id': randomUUID(), 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, body));
}
function onSockJs(ws) {
  const conn = {
    user: null,
    subs: new Map(),
    buf: '',
    send: (f) => ws.readyState === 1 && ws.send('a' + JSON.stringify([f])),
    close: () => ws.close(1000),
  };
  stompConns.add(conn);
  ws.send('o');
  const hb = setInterval(() => ws.readyState === 1 && ws.send('h'), 25_000);
  ws.on('close', () => {
    clearInterval(hb);
    stompConns.delete(conn);
  });
  ws.on('message', (data) => {
    let arr;
    try {
      arr = JSON.parse(String(data));
    } catch {
      return ws.close(1002);
    }
    const { frames, rest } = parseFrames(conn.buf + arr.join(''));
    conn.buf = rest;
    for (const f of frames) handleStomp(conn, f);
  });
}
function stompError(conn, msg) {
  conn.send(stompFrame('ERROR', { message: msg }, msg));
  setTimeout(() => conn.close(), 20);
}
function handleStomp(conn, f) {
  if (f.command === 'CONNECT' || f.command === 'STOMP') {
    const t = (f.headers.Authorization || f.headers.authorization || '').replace(/^Bearer /, '');
    const claims = verify(t, true);
    const s = claims && sessions.get(claims.userDto.id);
    if (!claims || !s) return stompError(conn, 'Unauthorized');
    conn.user = users.get(claims.userDto.id);
    return conn.send(stompFrame('CONNECTED', { version: '1.2', 'heart-beat': '0,0', 'user-name': conn.user.username }));
  }
  if (!conn.user) return stompError(conn, 'Unauthorized');
  if (f.command === 'SUBSCRIBE') {
    const m = /^\/sub\/channels\.([0-9a-f-]+)\.(messages|message-events)$/.exec(f.headers.destination || '');
    const c = m && channels.get(m[1]);
    if (m && (!c || !canSee(conn.user.id, c))) return stompError(conn, `Access denied to ${f.headers.destination}: no such channel or not a member`);
    conn.subs.set(f.headers.id, f.headers.destination);
  } else if (f.command === 'UNSUBSCRIBE') conn.subs.delete(f.headers.id);
  else if (f.command === 'SEND') {
    if (f.headers.destination !== '/pub/messages') return stompError(conn, `Unknown destination ${f.headers.destination}`);
    const req = JSON.parse(f.body);
    const c = channels.get(req.channelId);
    if (!c || !canSee(conn.user.id, c) || (req.authorId && req.authorId !== conn.user.id)) return stompError(conn, 'Access denied: /pub/messages');
    createMessage(conn.user, c, req.content || '', []);
  } else if (f.command === 'DISCONNECT') {
    if (f.headers.receipt) conn.send(stompFrame('RECEIPT', { 'receipt-id': f.headers.receipt }));
    setTimeout(() => conn.close(), 20);
  }
}

// ---- domain -----------------------------------------------------------------------------------
function storeFile(file, uploaderId, withEvent) {
  const b = { id: randomUUID(), fileName: file.name || 'blob', size: file.size, contentType: file.type || 'application/octet-stream', uploadStatus: 'WAITING', bytes: null };
  binaries.set(b.id, b);
  file.arrayBuffer().then((ab) => {
    setTimeout(() => {
      b.bytes = Buffer.from(ab);
      b.uploadStatus = /fail/i.test(b.fileName) ? 'FAILED' : 'SUCCESS';
      if (b.uploadStatus === 'FAILED') b.bytes = null;
      if (withEvent) sseEmit('binaryContents.status', binDto(b.id), null);
      if (b.uploadStatus === 'FAILED' && uploaderId)
        notify(uploaderId, '비동기 작업 실패: LocalBinaryContentStorage#putAsync', `요청 ID: ${randomUUID().replace(/-/g, '')}\n실패 사유: 파일 업로드 실패 (binaryContentId: ${b.id}): mock`, 'ASYNC_FAILED', null);
    }, UPLOAD_DELAY);
  });
  return b.id;
}
function notify(receiverId, title, content, type, targetId) {
  const n = { id: randomUUID(), createdAt: now(), receiverId, title, content, type, targetId };
  notifications.unshift(n);
  sseEmit('notifications', n, receiverId);
}
function createMessage(author, c, content, files) {
  const t = now();
  const m = { id: randomUUID(), createdAt: t, updatedAt: t, content, channelId: c.id, authorId: author.id, attachmentIds: [] };
  m.attachmentIds = files.map((f) => storeFile(f, author.id, true));
  messages.push(m);
  broadcastMessage(m);
  setTimeout(() => {
    for (const r of readStatuses.values())
      if (r.channelId === c.id && r.notificationEnabled && r.userId !== author.id)
        notify(r.userId, c.type === 'PUBLIC' ? `${author.username} (# ${c.name})` : author.username, content, 'NEW_MESSAGE', c.id);
  }, 30);
  return m;
}

// ---- HTTP -------------------------------------------------------------------------------------
class HttpError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    Object.assign(this, { status, code, details });
  }
}
const cookies = (req) => Object.fromEntries((req.headers.cookie || '').split(';').filter(Boolean).map((c) => c.trim().split('=').map(decodeURIComponent)));
function send(res, status, body, headers = {}) {
  const isStr = typeof body === 'string';
  res.writeHead(status, {
    'Content-Type': isStr ? 'text/plain;charset=UTF-8' : 'application/json',
    'Discodeit-Request-ID': randomUUID().replace(/-/g, ''),
    ...headers,
  });
  res.end(body === undefined || body === null ? '' : isStr ? body : JSON.stringify(body));
}
async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}
async function form(req) {
  const buf = await readBody(req);
  return new Response(buf, { headers: { 'content-type': req.headers['content-type'] || '' } }).formData();
}
async function json(req) {
  const buf = await readBody(req);
  try {
    return JSON.parse(buf.toString() || 'null');
  } catch {
    throw new HttpError(400, 'INVALID_REQUEST', '잘못된 요청입니다.');
  }
}
async function partJson(fd, name) {
  const v = fd.get(name);
  if (v === null) return null;
  return JSON.parse(typeof v === 'string' ? v : await v.text());
}
const PW_RE = /^(?=.*[0-9])(?=.*[a-zA-Z])(?=.*[!@#$%^&*]).{8,}$/;

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon' };
function serveStatic(req, res, path) {
  let p = normalize(join(DIST, decodeURIComponent(path)));
  if (!p.startsWith(DIST) || !existsSync(p) || statSync(p).isDirectory()) p = join(DIST, 'index.html');
  if (!existsSync(p)) return send(res, 404, 'build the client first (npm run build)');
  res.writeHead(200, { 'Content-Type': MIME[extname(p)] || 'application/octet-stream' });
  res.end(readFileSync(p));
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://x');
  const path = url.pathname;
  const method = req.method;
  if (path === '/__mock/restart' && method === 'POST') {
    send(res, 200, { ok: true });
    setTimeout(restart, 50);
    return;
  }
  if (path === '/ws/info') return send(res, 200, { entropy: 1, origins: ['*:*'], cookie_needed: false, websocket: true }, { 'Cache-Control': 'no-store' });
  if (!path.startsWith('/api/')) return serveStatic(req, res, path);

  const ck = cookies(req);
  if (['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) && path !== '/api/auth/logout') {
    if (!ck['XSRF-TOKEN'] || req.headers['x-xsrf-token'] !== ck['XSRF-TOKEN'])
      return send(res, 403, { timestamp: new Date().toISOString(), status: 403, error: 'Forbidden', path });
  }
  const auth = req.headers.authorization || '';
  let me = null;
  if (auth.startsWith('Bearer ')) {
    const claims = verify(auth.slice(7));
    if (claims) me = users.get(claims.userDto.id) || null;
    else if (!path.startsWith('/api/auth/') && !/\/download$/.test(path) && !(path === '/api/users' && method === 'POST'))
      throw new HttpError(401, 'INVALID_TOKEN', '유효하지 않은 토큰입니다.', { accessToken: auth.slice(7) });
  }
  const need = () => {
    if (!me) throw Object.assign(new HttpError(403, 'Forbidden', 'Forbidden'), { plain: true });
    return me;
  };
  const seg = path.split('/').slice(2); // after /api
  const ensureCsrf = () => {
    if (!ck['XSRF-TOKEN']) return { 'Set-Cookie': `XSRF-TOKEN=${randomUUID()}; Path=/` };
    return {};
  };

  // auth
  if (path === '/api/auth/csrf-token' && method === 'GET') {
    const h = ensureCsrf();
    const token = h['Set-Cookie'] ? h['Set-Cookie'].split(';')[0].split('=')[1] : ck['XSRF-TOKEN'];
    return send(res, 200, { token, headerName: 'X-XSRF-TOKEN', parameterName: '_csrf' }, h);
  }
  if (path === '/api/auth/login' && method === 'POST') {
    const b = await json(req);
    const u = [...users.values()].find((x) => x.username === b?.username);
    if (!u || u.password !== b?.password) throw new HttpError(401, 'BadCredentialsException', 'Bad credentials');
    const s = newSession(u);
    sseEmit('users.refresh', { userId: u.id }, null);
    return send(res, 200, JSON.stringify(s.access), { 'Content-Type': 'application/json;charset=UTF-8', 'Set-Cookie': `refresh_token=${s.refresh}; Path=/api/auth; HttpOnly` });
  }
  if ((path === '/api/auth/me' && method === 'GET') || (path === '/api/auth/refresh' && method === 'POST')) {
    const rt = ck.refresh_token;
    if (!rt) throw new HttpError(401, 'TOKEN_NOT_FOUND', '토큰을 찾을 수 없습니다.');
    const entry = [...sessions.entries()].find(([, s]) => s.refresh === rt);
    if (!entry) throw new HttpError(401, 'TOKEN_NOT_FOUND', '토큰을 찾을 수 없습니다.', { refreshToken: rt });
    const [uid, s] = entry;
    if (method === 'GET') return send(res, 200, s.access, { 'Content-Type': 'application/json' });
    const u = users.get(uid);
    s.access = sign(u, ACCESS_TTL);
    s.refresh = sign(u, 7 * 86400);
    s.exp = Math.floor(Date.now() / 1000) + ACCESS_TTL;
    return send(res, 200, s.access, { 'Content-Type': 'application/json', 'Set-Cookie': `refresh_token=${s.refresh}; Path=/api/auth; HttpOnly` });
  }
  if (path === '/api/auth/logout' && method === 'POST') {
    const entry = [...sessions.entries()].find(([, s]) => s.refresh === ck.refresh_token);
    if (entry) endSession(entry[0]);
    return send(res, 200, '', { 'Set-Cookie': ['refresh_token=; Path=/api/auth; Max-Age=0; HttpOnly', 'XSRF-TOKEN=; Path=/; Max-Age=0'] });
  }
  if (path === '/api/auth/role' && method === 'PUT') {
    if (need().role !== 'ADMIN') throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
    const b = await json(req);
    const u = users.get(b.userId);
    if (!u) throw new HttpError(404, 'USER_NOT_FOUND', '사용자를 찾을 수 없습니다.', { userId: b.userId });
    const prev = u.role;
    u.role = b.newRole;
    endSession(u.id);
    if (prev !== u.role) notify(u.id, `권한 변경: ${prev} -> ${u.role}`, `관리자에 의해 권한이 '${u.role}'(으)로 변경되었습니다.`, 'ROLE_CHANGED', u.id);
    return send(res, 200, userDto(u));
  }

  // users
  if (path === '/api/users' && method === 'POST') {
    const fd = await form(req);
    const b = await partJson(fd, 'userCreateRequest');
    const details = {};
    if (!b?.username || b.username.length < 3 || b.username.length > 50) details.username = '사용자 이름은 3자 이상 50자 이하여야 합니다';
    if (!b?.email || !/^[^@\s]+@[^@\s]+$/.test(b.email)) details.email = '유효한 이메일 형식이어야 합니다';
    if (!b?.password || !PW_RE.test(b.password)) details.password = '비밀번호는 최소 8자 이상, 숫자, 문자, 특수문자를 포함해야 합니다';
    if (Object.keys(details).length) throw new HttpError(400, 'VALIDATION_ERROR', '요청 데이터 유효성 검사에 실패했습니다', details);
    for (const u of users.values()) {
      if (u.email === b.email) throw new HttpError(409, 'DUPLICATE_USER', '이미 존재하는 사용자입니다.', { email: b.email });
      if (u.username === b.username) throw new HttpError(409, 'DUPLICATE_USER', '이미 존재하는 사용자입니다.', { username: b.username });
    }
    const u = addUser(b.username, b.email, b.password);
    const p = fd.get('profile');
    if (p && typeof p !== 'string' && p.size > 0) u.profileId = storeFile(p, null, false);
    sseEmit('users.refresh', { userId: u.id }, null);
    return send(res, 201, userDto(u));
  }
  if (path === '/api/users' && method === 'GET') {
    need();
    return send(res, 200, [...users.values()].map((u) => userDto(u, true)));
  }
  if (seg[0] === 'users' && seg[1] && method === 'PATCH') {
    const caller = need();
    if (caller.id !== seg[1] && caller.role !== 'ADMIN') throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
    const u = users.get(seg[1]);
    if (!u) throw new HttpError(404, 'USER_NOT_FOUND', '사용자를 찾을 수 없습니다.', { userId: seg[1] });
    const fd = await form(req);
    const b = (await partJson(fd, 'userUpdateRequest')) || {};
    if (b.newUsername && b.newUsername !== u.username) {
      if ([...users.values()].some((x) => x.username === b.newUsername)) throw new HttpError(409, 'DUPLICATE_USER', '이미 존재하는 사용자입니다.', { username: b.newUsername });
      u.username = b.newUsername;
    }
    if (b.newEmail) u.email = b.newEmail;
    if (b.newPassword) u.password = b.newPassword;
    const p = fd.get('profile');
    if (p && typeof p !== 'string' && p.size > 0) u.profileId = storeFile(p, caller.id, false);
    sseEmit('users.refresh', { userId: u.id }, null);
    return send(res, 200, userDto(u));
  }

  // channels
  if (path === '/api/channels/public' && method === 'POST') {
    if (need().role === 'USER') throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
    const b = await json(req);
    if (!b?.name || b.name.length < 2 || b.name.length > 50) throw new HttpError(400, 'VALIDATION_ERROR', '요청 데이터 유효성 검사에 실패했습니다', { name: '채널명은 2자 이상 50자 이하여야 합니다' });
    const c = { id: randomUUID(), type: 'PUBLIC', name: b.name, description: b.description ?? null, createdAt: now() };
    channels.set(c.id, c);
    sseEmit('channels.refresh', { channelId: c.id }, null);
    return send(res, 201, channelDto(c));
  }
  if (path === '/api/channels/private' && method === 'POST') {
    need();
    const b = await json(req);
    const ids = [...new Set(b?.participantIds || [])].filter((id) => users.has(id));
    if (ids.length < 2) throw new HttpError(400, 'VALIDATION_ERROR', '요청 데이터 유효성 검사에 실패했습니다', { participantIds: '비공개 채널에는 최소 2명의 참여자가 필요합니다' });
    const c = { id: randomUUID(), type: 'PRIVATE', name: null, description: null, createdAt: now() };
    channels.set(c.id, c);
    for (const uid of ids) {
      const id = randomUUID();
      readStatuses.set(id, { id, userId: uid, channelId: c.id, lastReadAt: c.createdAt, notificationEnabled: true });
    }
    for (const uid of ids) sseEmit('channels.refresh', channelDto(c), uid);
    return send(res, 201, channelDto(c));
  }
  if (seg[0] === 'channels' && seg[1] && !seg[2] && (method === 'PATCH' || method === 'DELETE')) {
    if (need().role === 'USER') throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
    const c = channels.get(seg[1]);
    if (!c) throw new HttpError(404, 'CHANNEL_NOT_FOUND', '채널을 찾을 수 없습니다.', { channelId: seg[1] });
    if (method === 'DELETE') {
      channels.delete(c.id);
      for (let i = messages.length - 1; i >= 0; i--) if (messages[i].channelId === c.id) messages.splice(i, 1);
      for (const [id, r] of readStatuses) if (r.channelId === c.id) readStatuses.delete(id);
      sseEmit('channels.refresh', { channelId: c.id }, null);
      return send(res, 204, null);
    }
    if (c.type === 'PRIVATE') throw new HttpError(400, 'PRIVATE_CHANNEL_UPDATE', '비공개 채널은 수정할 수 없습니다.', { channelId: c.id });
    const b = await json(req);
    if (b?.newName != null && (b.newName.length < 2 || b.newName.length > 50))
      throw new HttpError(400, 'VALIDATION_ERROR', '요청 데이터 유효성 검사에 실패했습니다', { newName: '채널명은 2자 이상 50자 이하여야 합니다' });
    if (b?.newName != null) c.name = b.newName;
    if (b?.newDescription != null) c.description = b.newDescription;
    sseEmit('channels.refresh', { channelId: c.id }, null);
    return send(res, 200, channelDto(c));
  }
  if (path === '/api/channels' && method === 'GET') {
    const caller = need();
    const uid = url.searchParams.get('userId');
    if (uid !== caller.id && caller.role !== 'ADMIN') throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
    return send(res, 200, [...channels.values()].filter((c) => canSee(uid, c)).map(channelDto));
  }

  // messages
  if (path === '/api/messages' && method === 'GET') {
    const caller = need();
    const c = channels.get(url.searchParams.get('channelId'));
    if (!c) return send(res, 200, { content: [], nextCursor: null, size: 50, hasNext: false, totalElements: null });
    if (!canSee(caller.id, c)) throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
    const size = Number(url.searchParams.get('size') || 50);
    const cursor = url.searchParams.get('cursor');
    const key = (s) => s.replace(/\.(\d+)Z$/, (_, f) => `.${f.padEnd(9, '0')}Z`).replace(/:(\d\d)Z$/, ':$1.000000000Z');
    const list = messages
      .filter((m) => m.channelId === c.id && (!cursor || key(m.createdAt) < key(cursor)))
      .sort((a, b) => (key(a.createdAt) < key(b.createdAt) ? 1 : -1));
    const page = list.slice(0, size);
    return send(res, 200, { content: page.map(messageDto), nextCursor: page.at(-1)?.createdAt ?? null, size, hasNext: list.length > size, totalElements: null });
  }
  if (path === '/api/messages' && method === 'POST') {
    const caller = need();
    const fd = await form(req);
    const b = await partJson(fd, 'messageCreateRequest');
    const files = fd.getAll('attachments').filter((f) => typeof f !== 'string');
    const c = channels.get(b?.channelId);
    if (!c) throw new HttpError(404, 'CHANNEL_NOT_FOUND', '채널을 찾을 수 없습니다.', { channelId: b?.channelId });
    if (!canSee(caller.id, c) || (b.authorId && b.authorId !== caller.id)) throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
    if (!b.content?.trim() && !files.length) throw new HttpError(400, 'VALIDATION_ERROR', '요청 데이터 유효성 검사에 실패했습니다', { content: '메시지 내용은 필수입니다' });
    return send(res, 201, messageDto(createMessage(caller, c, b.content || '', files)));
  }

  if (seg[0] === 'messages' && seg[1] && (method === 'PATCH' || method === 'DELETE')) {
    const caller = need();
    const i = messages.findIndex((x) => x.id === seg[1]);
    if (i < 0) throw new HttpError(404, 'MESSAGE_NOT_FOUND', '메시지를 찾을 수 없습니다.', { messageId: seg[1] });
    const m = messages[i];
    if (method === 'DELETE') {
      if (m.authorId !== caller.id && caller.role !== 'ADMIN') throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
      messages.splice(i, 1);
      for (const id of m.attachmentIds) binaries.delete(id);
      broadcastMessageEvent(m.channelId, { type: 'deleted', messageId: m.id, channelId: m.channelId });
      return send(res, 204, null);
    }
    const b = await json(req);
    if (!b?.newContent?.trim() || b.newContent.length > 2000)
      throw new HttpError(400, 'VALIDATION_ERROR', '요청 데이터 유효성 검사에 실패했습니다', { newContent: '메시지 내용은 필수입니다' });
    if (m.authorId !== caller.id) throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
    m.content = b.newContent;
    m.updatedAt = now();
    broadcastMessageEvent(m.channelId, { type: 'updated', message: messageDto(m) });
    return send(res, 200, messageDto(m));
  }

  // read statuses
  if (path === '/api/readStatuses' && method === 'GET') {
    const caller = need();
    return send(res, 200, [...readStatuses.values()].filter((r) => r.userId === caller.id));
  }
  if (path === '/api/readStatuses' && method === 'POST') {
    const caller = need();
    const b = await json(req);
    if (b.userId !== caller.id) throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
    if (Date.parse(b.lastReadAt) > Date.now() + 5000) throw new HttpError(400, 'VALIDATION_ERROR', '요청 데이터 유효성 검사에 실패했습니다', { lastReadAt: '마지막 읽은 시간은 현재 또는 과거 시간이어야 합니다' });
    if ([...readStatuses.values()].some((r) => r.userId === b.userId && r.channelId === b.channelId))
      throw new HttpError(409, 'DUPLICATE_READ_STATUS', '이미 존재하는 읽음 상태입니다.', { userId: b.userId, channelId: b.channelId });
    const c = channels.get(b.channelId);
    if (!c) throw new HttpError(404, 'CHANNEL_NOT_FOUND', '채널을 찾을 수 없습니다.', { channelId: b.channelId });
    const r = { id: randomUUID(), userId: b.userId, channelId: b.channelId, lastReadAt: b.lastReadAt, notificationEnabled: c.type === 'PRIVATE' };
    readStatuses.set(r.id, r);
    return send(res, 201, r);
  }
  if (seg[0] === 'readStatuses' && seg[1] && method === 'PATCH') {
    const caller = need();
    const r = readStatuses.get(seg[1]);
    if (!r) throw new HttpError(404, 'READ_STATUS_NOT_FOUND', '읽음 상태를 찾을 수 없습니다.', { readStatusId: seg[1] });
    if (r.userId !== caller.id) throw new HttpError(403, 'AuthorizationDeniedException', 'Access Denied');
    const b = await json(req);
    if (b.newLastReadAt) r.lastReadAt = b.newLastReadAt;
    if (typeof b.newNotificationEnabled === 'boolean') r.notificationEnabled = b.newNotificationEnabled;
    return send(res, 200, r);
  }

  // binary contents
  if (seg[0] === 'binaryContents' && seg[2] === 'download' && method === 'GET') {
    const b = binaries.get(seg[1]);
    if (!b || !b.bytes) throw new HttpError(404, 'BINARY_CONTENT_NOT_FOUND', '바이너리 컨텐츠를 찾을 수 없습니다.', { binaryContentId: seg[1] });
    res.writeHead(200, { 'Content-Type': b.contentType, 'Content-Length': b.bytes.length, 'Content-Disposition': `attachment; filename="${b.fileName}"` });
    return res.end(b.bytes);
  }
  if (path === '/api/binaryContents' && method === 'GET') {
    need();
    const ids = url.searchParams.getAll('binaryContentIds').flatMap((s) => s.split(','));
    return send(res, 200, ids.map(binDto).filter(Boolean));
  }
  if (seg[0] === 'binaryContents' && seg[1] && method === 'GET') {
    need();
    const d = binDto(seg[1]);
    if (!d) throw new HttpError(404, 'BINARY_CONTENT_NOT_FOUND', '바이너리 컨텐츠를 찾을 수 없습니다.', { binaryContentId: seg[1] });
    return send(res, 200, d);
  }

  // notifications
  if (path === '/api/notifications' && method === 'GET') {
    const caller = need();
    return send(res, 200, notifications.filter((n) => n.receiverId === caller.id));
  }
  if (seg[0] === 'notifications' && seg[1] && method === 'DELETE') {
    const caller = need();
    const i = notifications.findIndex((n) => n.id === seg[1] && n.receiverId === caller.id);
    if (i >= 0) notifications.splice(i, 1);
    return send(res, 204, null);
  }

  // SSE
  if (path === '/api/sse' && method === 'GET') {
    const caller = need();
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
    res.write(`id:${Date.now().toString(36)}-connect\nevent:connect\ndata:{}\n\n`);
    const last = req.headers['last-event-id'] || url.searchParams.get('lastEventId') || url.searchParams.get('LastEventId');
    if (last) {
      const i = sseLog.findIndex((e) => e.id === last);
      if (i >= 0) for (const e of sseLog.slice(i + 1)) if (e.userId === null || e.userId === caller.id) sseWrite(res, e);
    }
    const st = { userId: caller.id, res };
    sseStreams.add(st);
    const ping = setInterval(() => !res.writableEnded && res.write(':ping\n\n'), 15_000);
    req.on('close', () => {
      clearInterval(ping);
      sseStreams.delete(st);
    });
    return;
  }
  throw new HttpError(404, 'NOT_FOUND', `No route ${method} ${path}`);
}

const server = createServer((req, res) => {
  handle(req, res).catch((e) => {
    if (res.headersSent) return res.end();
    if (e.plain) return send(res, 403, { timestamp: new Date().toISOString(), status: 403, error: 'Forbidden', path: req.url });
    const status = e.status || 500;
    send(res, status, { timestamp: now(), code: e.code || e.constructor.name, message: e.message, details: e.details || {}, exceptionType: e.constructor.name, status });
  });
});
const wss = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  if (!/^\/ws\/[^/.]+\/[^/.]+\/websocket$/.test(new URL(req.url, 'http://x').pathname)) return socket.destroy();
  wss.handleUpgrade(req, socket, head, onSockJs);
});

function restart() {
  console.log('[mock] restarting: dropping all connections');
  for (const c of stompConns) c.close();
  for (const ws of wss.clients) ws.terminate();
  for (const st of sseStreams) st.res.destroy();
  sseStreams.clear();
  server.close();
  server.closeAllConnections();
  setTimeout(() => server.listen(PORT, '127.0.0.1', () => console.log('[mock] back up')), 1500);
}

server.listen(PORT, '127.0.0.1', () => console.log(`[mock] discodeit mock server on http://127.0.0.1:${server.address().port} (dist: ${DIST})`));
