/**
 * A small fetch-based EventSource: it can send an Authorization header, tracks the last
 * event id, reconnects with `?lastEventId=<id>` after errors (exponential backoff) and treats
 * 45 s without a single byte as a dead stream.
 */
import type { ConnState } from './types';

export interface SseEvent {
  id: string | null;
  event: string;
  data: string;
}

export interface SseOptions {
  url: string;
  /** returns the current access token (read before every (re)connect) */
  token: () => string | null;
  onEvent: (e: SseEvent) => void;
  onState: (s: ConnState) => void;
  /** called once per successful open; `reconnect` is false for the very first open */
  onOpen?: (reconnect: boolean) => void;
  /** 401/403 while connecting: return true to retry at once (e.g. after a token refresh) */
  onUnauthorized?: () => Promise<boolean>;
  silenceMs?: number;
  maxBackoffMs?: number;
}

export class FetchEventSource {
  lastEventId: string | null = null;
  private opts: SseOptions;
  private ctrl: AbortController | null = null;
  private closed = false;
  private attempt = 0;
  private opens = 0;
  private retryTimer: number | undefined;
  private silenceTimer: number | undefined;
  private serverRetry: number | null = null;

  constructor(opts: SseOptions) {
    this.opts = opts;
    this.connect();
  }

  close(): void {
    this.closed = true;
    window.clearTimeout(this.retryTimer);
    window.clearTimeout(this.silenceTimer);
    this.ctrl?.abort();
    this.ctrl = null;
    this.opts.onState('idle');
  }

  /** Drop the current stream and reconnect immediately (e.g. the network came back). */
  kick(): void {
    if (this.closed) return;
    window.clearTimeout(this.retryTimer);
    this.ctrl?.abort();
    this.attempt = 0;
    this.connect();
  }

  private armSilence(ctrl: AbortController): void {
    window.clearTimeout(this.silenceTimer);
    this.silenceTimer = window.setTimeout(() => {
      if (this.ctrl === ctrl) ctrl.abort(new DOMException('SSE silent for too long', 'TimeoutError'));
    }, this.opts.silenceMs ?? 45_000);
  }

  private scheduleRetry(): void {
    if (this.closed) return;
    this.opts.onState('reconnecting');
    const max = this.opts.maxBackoffMs ?? 15_000;
    const base = this.serverRetry ?? 1000;
    const delay = Math.min(max, base * 2 ** Math.min(this.attempt, 6)) * (0.8 + Math.random() * 0.4);
    this.attempt++;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    this.opts.onState(this.opens === 0 && this.attempt === 0 ? 'connecting' : 'reconnecting');
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    let url = this.opts.url;
    if (this.lastEventId !== null) {
      url += (url.includes('?') ? '&' : '?') + 'lastEventId=' + encodeURIComponent(this.lastEventId);
    }
    const headers: Record<string, string> = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' };
    const token = this.opts.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    this.armSilence(ctrl);
    let res: Response;
    try {
      res = await fetch(url, { headers, credentials: 'same-origin', cache: 'no-store', signal: ctrl.signal });
    } catch {
      if (this.ctrl === ctrl) this.scheduleRetry();
      return;
    }
    if (this.ctrl !== ctrl) return;
    if (res.status === 401 || res.status === 403) {
      window.clearTimeout(this.silenceTimer);
      const again = this.opts.onUnauthorized ? await this.opts.onUnauthorized() : false;
      if (this.closed || this.ctrl !== ctrl) return;
      if (again) {
        this.attempt++;
        this.retryTimer = window.setTimeout(() => this.connect(), 50);
      } else this.scheduleRetry();
      return;
    }
    if (!res.ok || !res.body) {
      this.scheduleRetry();
      return;
    }
    const reconnect = this.opens > 0;
    this.opens++;
    this.attempt = 0;
    this.opts.onState('connected');
    this.opts.onOpen?.(reconnect);
    try {
      await this.read(res.body, ctrl);
    } catch {
      /* aborted or network error */
    }
    if (this.ctrl === ctrl && !this.closed) this.scheduleRetry();
  }

  private async read(body: ReadableStream<Uint8Array>, ctrl: AbortController): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let data: string[] = [];
    let event = '';
    let id: string | null = null;
    const onAbort = () => reader.cancel().catch(() => {});
    ctrl.signal.addEventListener('abort', onAbort);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        if (this.ctrl !== ctrl) return;
        this.armSilence(ctrl);
        buf += decoder.decode(value, { stream: true });
        // process complete lines; keep a trailing partial line (and a lone trailing \r) in buf
        let start = 0;
        for (let i = 0; i < buf.length; i++) {
          const ch = buf[i];
          if (ch !== '\n' && ch !== '\r') continue;
          if (ch === '\r' && i + 1 === buf.length) break; // maybe \r\n split across chunks
          const line = buf.slice(start, i);
          if (ch === '\r' && buf[i + 1] === '\n') i++;
          start = i + 1;
          if (line === '') {
            if (id !== null) this.lastEventId = id;
            if (data.length) this.opts.onEvent({ id: this.lastEventId, event: event || 'message', data: data.join('\n') });
            data = [];
            event = '';
            id = null;
            continue;
          }
          if (line[0] === ':') continue; // comment / keep-alive
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          let val = c < 0 ? '' : line.slice(c + 1);
          if (val[0] === ' ') val = val.slice(1);
          if (field === 'data') data.push(val);
          else if (field === 'event') event = val;
          else if (field === 'id') {
            if (!val.includes('\0')) id = val;
          } else if (field === 'retry') {
            const n = Number(val);
            if (/^\d+$/.test(val) && n > 0) this.serverRetry = Math.min(n, 30_000);
          }
        }
        buf = buf.slice(start);
      }
    } finally {
      ctrl.signal.removeEventListener('abort', onAbort);
    }
  }
}
