import type { ErrorResponse, UserDto } from './types';

/** Error thrown for every non-2xx answer (or network failure) of the REST API. */
export class ApiError extends Error {
  status: number;
  code: string;
  body: ErrorResponse | null;
  requestId: string | null;
  constructor(status: number, body: ErrorResponse | null, requestId: string | null, fallback: string) {
    super(body?.message || body?.error || fallback);
    this.status = body?.status ?? status;
    this.code = body?.code || body?.error || (status ? `HTTP_${status}` : 'NETWORK_ERROR');
    this.body = body;
    this.requestId = requestId;
  }
}

// ---- access token: memory only -------------------------------------------------------------

let accessToken: string | null = null;
let tokenListeners: Array<(t: string | null) => void> = [];

export function getToken(): string | null {
  return accessToken;
}

export function setToken(t: string | null): void {
  accessToken = t;
  for (const l of tokenListeners) l(t);
}

export function onTokenChange(l: (t: string | null) => void): () => void {
  tokenListeners.push(l);
  return () => {
    tokenListeners = tokenListeners.filter((x) => x !== l);
  };
}

/** Called when the session is definitely gone (refresh failed). */
let authLostHandler: () => void = () => {};
export function onAuthLost(h: () => void): void {
  authLostHandler = h;
}

/** Decodes the (unverified) payload of a JWT. */
export function decodePayload(token: string): Record<string, unknown> | null {
  try {
    const part = token.split('.')[1];
    if (!part) return null;
    let b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    return payload && typeof payload === 'object' ? payload : null;
  } catch {
    return null;
  }
}

/** The `userDto` claim of a JWT. */
export function decodeUser(token: string): UserDto | null {
  const p = decodePayload(token);
  return (p?.userDto as UserDto | undefined) ?? null;
}

/** The login/me/refresh endpoints answer a JWT either as a JSON string literal or bare text. */
export function tokenFromBody(body: unknown): string {
  let t = typeof body === 'string' ? body.trim() : '';
  if (t.startsWith('"') && t.endsWith('"')) {
    try {
      t = JSON.parse(t);
    } catch {
      t = t.slice(1, -1);
    }
  }
  if (!t || t.split('.').length !== 3) throw new ApiError(0, { message: 'Malformed token in response' }, null, 'Malformed token');
  return t;
}

// ---- CSRF ----------------------------------------------------------------------------------

export function readCookie(name: string): string | null {
  for (const part of document.cookie.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return null;
}

let csrfInflight: Promise<void> | null = null;
export function fetchCsrf(): Promise<void> {
  if (!csrfInflight) {
    csrfInflight = fetch('/api/auth/csrf-token', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(() => undefined, () => undefined)
      .finally(() => {
        csrfInflight = null;
      });
  }
  return csrfInflight;
}

// ---- request -------------------------------------------------------------------------------

export interface ReqOpts {
  json?: unknown;
  form?: FormData;
  query?: Record<string, string | number | undefined | null>;
  /** do not attempt the refresh-and-retry dance (auth endpoints) */
  noRefresh?: boolean;
  /** do not send the bearer token */
  noAuth?: boolean;
  signal?: AbortSignal;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

async function parseBody(res: Response): Promise<unknown> {
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  const ct = res.headers.get('content-type') || '';
  if (ct.includes('json')) {
    try {
      return JSON.parse(text);
    } catch {
      return text; // e.g. /auth/me answers a bare token with a JSON content type
    }
  }
  return text;
}

async function rawRequest(method: string, path: string, opts: ReqOpts): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json, text/plain, */*' };
  if (!opts.noAuth && accessToken) headers.Authorization = `Bearer ${accessToken}`;
  if (MUTATING.has(method)) {
    if (!readCookie('XSRF-TOKEN')) await fetchCsrf();
    const x = readCookie('XSRF-TOKEN');
    if (x) headers['X-XSRF-TOKEN'] = x;
  }
  let body: BodyInit | undefined;
  if (opts.form) body = opts.form;
  else if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  let url = '/api' + path;
  if (opts.query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query)) if (v !== undefined && v !== null) q.append(k, String(v));
    const s = q.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  try {
    return await fetch(url, { method, headers, body, credentials: 'same-origin', signal: opts.signal });
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw e;
    throw new ApiError(0, { message: 'Network error: the server is unreachable', code: 'NETWORK_ERROR' }, null, 'Network error');
  }
}

async function toError(res: Response): Promise<ApiError> {
  let body: ErrorResponse | null = null;
  try {
    const b = await parseBody(res);
    if (b && typeof b === 'object') body = b as ErrorResponse;
    else if (typeof b === 'string' && b) body = { message: b.slice(0, 300) };
  } catch {
    /* ignore */
  }
  return new ApiError(res.status, body, res.headers.get('Discodeit-Request-ID'), `${res.status} ${res.statusText}`);
}

let refreshInflight: Promise<string | null> | null = null;

/** POST /api/auth/refresh, single-flight. Resolves to the new token, or null when the session is gone. */
export function refreshToken(): Promise<string | null> {
  if (!refreshInflight) {
    refreshInflight = (async () => {
      try {
        let res = await rawRequest('POST', '/auth/refresh', { noAuth: true });
        if (res.status === 403) {
          // most likely a stale CSRF cookie: get a fresh one and try once more
          await fetchCsrf();
          res = await rawRequest('POST', '/auth/refresh', { noAuth: true });
        } else if (res.status === 401) {
          // Another tab may have rotated the refresh cookie at the same moment: the browser
          // now holds the new one, so one more try after a short pause settles it.
          await new Promise((r) => setTimeout(r, 300 + Math.random() * 500));
          res = await rawRequest('POST', '/auth/refresh', { noAuth: true });
        }
        if (!res.ok) return null;
        const t = tokenFromBody(await parseBody(res));
        setToken(t);
        return t;
      } catch (e) {
        if (e instanceof ApiError && e.status === 0 && e.code === 'NETWORK_ERROR') throw e;
        return null;
      }
    })().finally(() => {
      refreshInflight = null;
    });
  }
  return refreshInflight;
}

/**
 * Like refreshToken(), but on a definite failure (not a network error) it hands
 * control to the auth-lost handler (back to the login screen).
 */
export async function refreshOrLogout(): Promise<string | null> {
  let t: string | null = null;
  try {
    t = await refreshToken();
  } catch {
    return null; // network trouble: keep the session, callers retry later
  }
  if (!t) authLostHandler();
  return t;
}

export async function request<T = unknown>(method: string, path: string, opts: ReqOpts = {}): Promise<T> {
  const sentToken = accessToken;
  let res = await rawRequest(method, path, opts);
  if (res.status === 401 && !opts.noRefresh && sentToken) {
    // Another call may already have rotated the token meanwhile.
    const t = accessToken !== sentToken ? accessToken : await refreshOrLogout();
    if (!t) throw await toError(res);
    res = await rawRequest(method, path, opts);
  }
  if (!res.ok) throw await toError(res);
  return (await parseBody(res)) as T;
}

export const api = {
  get: <T>(path: string, opts?: ReqOpts) => request<T>('GET', path, opts),
  post: <T>(path: string, opts?: ReqOpts) => request<T>('POST', path, opts),
  put: <T>(path: string, opts?: ReqOpts) => request<T>('PUT', path, opts),
  patch: <T>(path: string, opts?: ReqOpts) => request<T>('PATCH', path, opts),
  del: <T>(path: string, opts?: ReqOpts) => request<T>('DELETE', path, opts),
};

export function jsonBlob(v: unknown): Blob {
  return new Blob([JSON.stringify(v)], { type: 'application/json' });
}

export function downloadUrl(id: string): string {
  return `/api/binaryContents/${encodeURIComponent(id)}/download`;
}
