import { Client, ReconnectionTimeMode, type IFrame, type IMessage, type StompSubscription } from '@stomp/stompjs';
import SockJS from 'sockjs-client';
import type { ConnState } from './types';

export interface StompOptions {
  token: () => string | null;
  /** refresh the access token; resolves false when the session is gone */
  refresh: () => Promise<boolean>;
  onState: (s: ConnState) => void;
  /** every successful CONNECTED; `reconnect` is false for the first one */
  onConnected: (reconnect: boolean) => void;
  onError: (msg: string) => void;
  /** the server refused a subscription (ERROR naming the destination); it has been dropped */
  onDenied?: (destination: string) => void;
}

type Handler = (body: unknown) => void;

/** One STOMP-over-SockJS connection at /ws with auto-reconnect and resubscription. */
export class StompLink {
  private client: Client;
  private opts: StompOptions;
  private subs = new Map<string, { handler: Handler; sub: StompSubscription | null }>();
  private connects = 0;
  private needRefresh = false;
  private stopped = false;

  constructor(opts: StompOptions) {
    this.opts = opts;
    this.client = new Client({
      webSocketFactory: () => new SockJS(location.origin + '/ws') as unknown as WebSocket,
      connectHeaders: {},
      heartbeatIncoming: 4000,
      heartbeatOutgoing: 4000,
      reconnectDelay: 1000,
      maxReconnectDelay: 8000,
      reconnectTimeMode: ReconnectionTimeMode.EXPONENTIAL,
      connectionTimeout: 10_000,
      debug: () => {},
      beforeConnect: async (c) => {
        if (this.needRefresh) {
          this.needRefresh = false;
          const ok = await this.opts.refresh();
          if (!ok || this.stopped) {
            await c.deactivate();
            return;
          }
        }
        const t = this.opts.token();
        c.connectHeaders = t ? { Authorization: `Bearer ${t}` } : {};
        this.opts.onState(this.connects === 0 ? 'connecting' : 'reconnecting');
      },
      onConnect: () => {
        const reconnect = this.connects > 0;
        this.connects++;
        this.opts.onState('connected');
        for (const [dest, s] of this.subs) s.sub = this.doSubscribe(dest, s.handler);
        this.opts.onConnected(reconnect);
      },
      onStompError: (frame: IFrame) => {
        const msg = frame.headers.message || frame.body || 'STOMP error';
        const text = `${frame.headers.message ?? ''} ${frame.body ?? ''}`;
        // the server names a refused destination ("Access denied to /sub/…: why")
        const dest = /\/sub\/[^\s"',:]+/.exec(text)?.[0];
        if (dest && this.subs.has(dest)) {
          // do not resubscribe to it on the automatic reconnect (that would loop)
          this.subs.delete(dest);
          this.opts.onDenied?.(dest);
        } else if (/unauthori[sz]ed|token|expired|auth/i.test(text)) this.needRefresh = true;
        this.opts.onError(msg);
      },
      onWebSocketClose: () => {
        for (const s of this.subs.values()) s.sub = null;
        if (!this.stopped) this.opts.onState('reconnecting');
      },
    });
    this.client.activate();
  }

  get connected(): boolean {
    return this.client.connected;
  }

  private doSubscribe(dest: string, handler: Handler): StompSubscription {
    return this.client.subscribe(dest, (m: IMessage) => {
      let body: unknown = m.body;
      try {
        body = JSON.parse(m.body);
      } catch {
        /* keep raw */
      }
      handler(body);
    });
  }

  subscribe(dest: string, handler: Handler): void {
    if (this.subs.has(dest)) this.unsubscribe(dest);
    const entry = { handler, sub: null as StompSubscription | null };
    this.subs.set(dest, entry);
    if (this.client.connected) entry.sub = this.doSubscribe(dest, handler);
  }

  unsubscribe(dest: string): void {
    const s = this.subs.get(dest);
    this.subs.delete(dest);
    if (s?.sub && this.client.connected) {
      try {
        s.sub.unsubscribe();
      } catch {
        /* connection is going away */
      }
    }
  }

  /** Returns false when not connected (caller may fall back to HTTP). */
  publish(destination: string, body: unknown): boolean {
    if (!this.client.connected) return false;
    this.client.publish({ destination, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    return true;
  }

  /** Force a fresh connection (e.g. after the browser came back online). */
  kick(): void {
    if (this.stopped) return;
    this.client.forceDisconnect();
  }

  stop(): void {
    this.stopped = true;
    this.subs.clear();
    void this.client.deactivate();
    this.opts.onState('idle');
  }
}
