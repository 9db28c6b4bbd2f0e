import { batch, computed, effect, signal } from '@preact/signals';
import {
  ApiError,
  api,
  decodePayload,
  decodeUser,
  fetchCsrf,
  getToken,
  jsonBlob,
  onAuthLost,
  onTokenChange,
  refreshOrLogout,
  refreshToken,
  setToken,
  tokenFromBody,
} from './api';
import { FetchEventSource } from './sse';
import { StompLink } from './stomp';
import type {
  BinaryContentDto,
  ChannelDto,
  ConnState,
  MessageDto,
  NotificationDto,
  PageResponse,
  ReadStatusDto,
  Role,
  UploadStatus,
  UserDto,
} from './types';

export const PAGE_SIZE = 20;

// ---- state ---------------------------------------------------------------------------------

export const booting = signal(true);
export const me = signal<UserDto | null>(null);
export const users = signal<UserDto[]>([]);
export const channels = signal<ChannelDto[]>([]);
export const channelsLoaded = signal(false);
export const readStatuses = signal<Record<string, ReadStatusDto>>({});
export const currentChannelId = signal<string | null>(null);
export const messages = signal<MessageDto[]>([]); // current channel, oldest first
export const paging = signal<{ nextCursor: string | null; hasNext: boolean; loading: boolean; loaded: boolean }>({
  nextCursor: null,
  hasNext: false,
  loading: false,
  loaded: false,
});
export const binStatus = signal<Record<string, UploadStatus>>({});
export const notifications = signal<NotificationDto[]>([]);
export const stompState = signal<ConnState>('idle');
export const sseState = signal<ConnState>('idle');
export const stompConnects = signal(0);
export const sseConnects = signal(0);
export type Modal = null | 'createPublic' | 'createPrivate' | 'profile' | 'admin' | 'editChannel';
export const modal = signal<Modal>(null);
/** A yes/no question in a dialog (deleting a message or a channel); `run` does the work. */
export interface Confirm {
  title: string;
  text: string;
  action: string;
  run: () => Promise<void>;
}
export const confirmDialog = signal<Confirm | null>(null);
/** The image attachment shown full size, if any. */
export const lightbox = signal<BinaryContentDto | null>(null);
/** The message being edited inline (one at a time). */
export const editingId = signal<string | null>(null);
/** `document.visibilityState === 'visible'`, as a signal. */
export const pageVisible = signal(typeof document === 'undefined' || document.visibilityState === 'visible');
/** Browser notification permission, or 'unsupported'. */
export const desktopPermission = signal<NotificationPermission | 'unsupported'>(
  typeof Notification === 'undefined' ? 'unsupported' : Notification.permission,
);
/**
 * Unread messages per channel id: ids of messages by others newer than the read status'
 * `lastReadAt`, `more` when there are more than one counted page holds. A channel without an
 * entry has not been counted yet.
 */
export interface Unread {
  ids: string[];
  more: boolean;
}
export const unread = signal<Record<string, Unread>>({});
export const sidebarOpen = signal(false);
export const membersOpen = signal(typeof window !== 'undefined' && window.innerWidth > 1000);

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  title: string;
  lines: string[];
}
export const toasts = signal<Toast[]>([]);

export const currentChannel = computed(() => channels.value.find((c) => c.id === currentChannelId.value) ?? null);
export const usersById = computed(() => {
  const m: Record<string, UserDto> = {};
  for (const u of users.value) m[u.id] = u;
  return m;
});

export function hasRole(role: Role | undefined, needed: Role): boolean {
  const rank: Record<Role, number> = { USER: 0, CHANNEL_MANAGER: 1, ADMIN: 2 };
  return !!role && rank[role] >= rank[needed];
}

// ---- helpers -------------------------------------------------------------------------------

/** Comparable key for Java `Instant.toString()` strings (fraction padded to 9 digits). */
export function tsKey(s: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(s);
  if (!m) return s;
  return `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}Z`;
}

export function validTime(s: string | null | undefined): number | null {
  if (!s) return null;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : null;
}

/** The contract's unread rule: a newer message than the read status (or no read status). */
function newerThanRead(c: ChannelDto): boolean {
  const last = validTime(c.lastMessageAt);
  if (last === null) return false; // "-1000000000-01-01T00:00:00Z": no messages
  const rs = readStatuses.value[c.id];
  if (!rs) return true;
  const read = validTime(rs.lastReadAt);
  return read === null || last > read;
}

/** The open channel, while the user can see it, has nothing unread. */
function seeing(channelId: string): boolean {
  return channelId === currentChannelId.value && pageVisible.value;
}

/** Unread messages of `c` (0 = read); `more` when the count is a lower bound: more than a
 * page, or not counted yet (`counted` false: the contract's rule says "unread"). */
export function unreadCount(c: ChannelDto): { n: number; more: boolean; counted: boolean } {
  if (seeing(c.id)) return { n: 0, more: false, counted: true };
  const u = unread.value[c.id];
  if (u) return { n: u.ids.length, more: u.more, counted: true };
  return newerThanRead(c) ? { n: 1, more: true, counted: false } : { n: 0, more: false, counted: false };
}

export function isUnread(c: ChannelDto): boolean {
  return unreadCount(c).n > 0;
}

export function countLabel(u: { n: number; more: boolean }): string {
  return u.n > 99 ? '99+' : `${u.n}${u.more ? '+' : ''}`;
}

/** Total unread messages over all channels, for the tab title. */
export const totalUnread = computed(() => {
  let n = 0;
  let more = false;
  for (const c of channels.value) {
    const u = unreadCount(c);
    n += u.n;
    more ||= u.more;
  }
  return { n, more };
});

let toastSeq = 0;
const recentErrors = new Map<string, number>();

export function toast(kind: Toast['kind'], title: string, lines: string[] = [], ttl = kind === 'error' ? 9000 : 4000): void {
  const id = ++toastSeq;
  toasts.value = [...toasts.value.slice(-4), { id, kind, title, lines }];
  window.setTimeout(() => dismissToast(id), ttl);
}

export function dismissToast(id: number): void {
  toasts.value = toasts.value.filter((t) => t.id !== id);
}

/** Shows an error toast. Background work (`quietNetwork`) stays silent about network failures:
 * the connection indicator already tells the user the server is unreachable. */
export function showError(e: unknown, context?: string, quietNetwork = false): void {
  if ((e as Error)?.name === 'AbortError') return;
  if (quietNetwork && e instanceof ApiError && e.code === 'NETWORK_ERROR') return;
  let title: string;
  const lines: string[] = [];
  if (e instanceof ApiError) {
    title = `${context ? context + ': ' : ''}${e.message}`;
    lines.push(`status ${e.status || '—'} · ${e.code}`);
    const d = e.body?.details;
    if (d && typeof d === 'object') for (const [k, v] of Object.entries(d)) lines.push(`${k}: ${String(v)}`);
    if (e.requestId) lines.push(`request id: ${e.requestId}`);
  } else {
    title = `${context ? context + ': ' : ''}${(e as Error)?.message || String(e)}`;
  }
  const key = title + lines.join('|');
  const now = Date.now();
  if ((recentErrors.get(key) ?? 0) > now - 4000) return;
  recentErrors.set(key, now);
  toast('error', title, lines);
}

function sortMessages(list: MessageDto[]): MessageDto[] {
  return list.sort((a, b) => {
    const ka = tsKey(a.createdAt);
    const kb = tsKey(b.createdAt);
    return ka < kb ? -1 : ka > kb ? 1 : a.id < b.id ? -1 : 1;
  });
}

/** Messages deleted during this session: a page fetched before the deletion must not bring
 * them back. */
const deletedIds = new Set<string>();

/** Merge messages into the current channel's list (dedupe by id; the copy edited last wins). */
function mergeMessages(incoming: MessageDto[]): void {
  if (!incoming.length) return;
  const byId = new Map(messages.value.map((m) => [m.id, m] as const));
  for (const m of incoming) {
    if (deletedIds.has(m.id)) continue;
    const old = byId.get(m.id);
    if (old && tsKey(old.updatedAt) > tsKey(m.updatedAt)) continue;
    byId.set(m.id, m);
  }
  messages.value = sortMessages([...byId.values()]);
}

function bumpLastMessageAt(channelId: string, at: string): boolean {
  let found = false;
  const list = channels.value.map((c) => {
    if (c.id !== channelId) return c;
    found = true;
    const cur = validTime(c.lastMessageAt);
    const next = validTime(at);
    if (next === null || (cur !== null && tsKey(c.lastMessageAt) >= tsKey(at))) return c;
    return { ...c, lastMessageAt: at };
  });
  if (found) channels.value = list;
  return found;
}

// server clock estimate (lastReadAt must not be in the server's future)
let clockSkew = 0;
function serverNowIso(minIso?: string | null): string {
  let t = Date.now() + clockSkew;
  const min = validTime(minIso ?? null);
  if (min !== null && min > t) t = min;
  return new Date(t).toISOString();
}

function debounce(fn: () => void, ms: number): () => void {
  let timer: number | undefined;
  return () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(fn, ms);
  };
}

// ---- data loading --------------------------------------------------------------------------

export async function loadUsers(): Promise<void> {
  try {
    const list = await api.get<UserDto[]>('/users');
    users.value = list;
    const mine = list.find((u) => u.id === me.value?.id);
    if (
      mine &&
      me.value &&
      (mine.username !== me.value.username || mine.email !== me.value.email || JSON.stringify(mine.profile) !== JSON.stringify(me.value.profile))
    ) {
      me.value = { ...me.value, username: mine.username, email: mine.email, profile: mine.profile };
    }
  } catch (e) {
    if (me.value) showError(e, 'Loading users', true);
  }
}

export async function loadChannels(): Promise<void> {
  const uid = me.value?.id;
  if (!uid) return;
  try {
    const list = await api.get<ChannelDto[]>('/channels', { query: { userId: uid } });
    if (me.value?.id !== uid) return;
    // keep locally bumped lastMessageAt values that are newer than the server's copy
    const prev = new Map(channels.value.map((c) => [c.id, c] as const));
    channels.value = list.map((c) => {
      const p = prev.get(c.id);
      if (p && validTime(p.lastMessageAt) !== null && tsKey(p.lastMessageAt) > tsKey(c.lastMessageAt)) {
        return { ...c, lastMessageAt: p.lastMessageAt };
      }
      return c;
    });
    channelsLoaded.value = true;
    const known = new Set(list.map((c) => c.id));
    const u = unread.value;
    if (Object.keys(u).some((id) => !known.has(id))) {
      unread.value = Object.fromEntries(Object.entries(u).filter(([id]) => known.has(id)));
    }
    syncSubscriptions();
    if (countsReady) void countUnread(true);
    if (modal.value === 'editChannel' && !currentChannel.value) modal.value = null;
    const cur = currentChannelId.value;
    if (cur && !list.some((c) => c.id === cur)) {
      confirmDialog.value = null;
      lightbox.value = null;
      closeChannel();
      toast('info', 'The channel you were viewing is no longer available.');
    }
  } catch (e) {
    if (me.value) showError(e, 'Loading channels', true);
  }
}

export async function loadReadStatuses(): Promise<void> {
  const uid = me.value?.id;
  if (!uid) return;
  try {
    const list = await api.get<ReadStatusDto[]>('/readStatuses', { query: { userId: uid } });
    const map: Record<string, ReadStatusDto> = {};
    for (const r of list) map[r.channelId] = r;
    readStatuses.value = map;
  } catch (e) {
    if (me.value) showError(e, 'Loading read statuses', true);
  }
}

export async function loadNotifications(): Promise<void> {
  try {
    const list = await api.get<NotificationDto[]>('/notifications');
    notifications.value = list;
  } catch (e) {
    if (me.value) showError(e, 'Loading notifications', true);
  }
}

/** Set once the first lists are loaded and counted; later list changes count new channels. */
let countsReady = false;

// ---- unread counts -------------------------------------------------------------------------

/** Page size of a count: a channel with more unread messages shows "99+". */
const COUNT_PAGE = 100;
/** Bumped by every mark-as-read, so a count started before it is dropped. */
const readGen = new Map<string, number>();

function setUnread(channelId: string, u: Unread | null): void {
  const next = { ...unread.value };
  if (u) next[channelId] = u;
  else delete next[channelId];
  unread.value = next;
}

function mine(m: MessageDto): boolean {
  return !!m.author && m.author.id === me.value?.id;
}

/** Whether `m` counts as unread against the channel's read status. */
function unreadMessage(m: MessageDto): boolean {
  if (mine(m)) return false;
  const rs = readStatuses.value[m.channelId];
  return !rs || tsKey(m.createdAt) > tsKey(rs.lastReadAt);
}

async function countChannel(c: ChannelDto): Promise<void> {
  const gen = readGen.get(c.id) ?? 0;
  const before = new Set(unread.value[c.id]?.ids ?? []);
  try {
    const page = await api.get<PageResponse<MessageDto>>('/messages', {
      query: { channelId: c.id, size: COUNT_PAGE, sort: 'createdAt,desc' },
    });
    if ((readGen.get(c.id) ?? 0) !== gen || !channels.value.some((x) => x.id === c.id)) return;
    const fresh = page.content.filter((m) => unreadMessage(m) && !deletedIds.has(m.id));
    // messages that arrived live meanwhile stay counted; the page replaces older ones
    const live = (unread.value[c.id]?.ids ?? []).filter((id) => !before.has(id));
    const ids = [...new Set([...fresh.map((m) => m.id), ...live])];
    const allNew = page.content.length > 0 && page.content.every((m) => mine(m) || unreadMessage(m));
    setUnread(c.id, { ids, more: page.hasNext && allNew });
  } catch {
    /* the contract's rule stands in until the next count */
  }
}

/**
 * Counts unread messages (one page per channel, three at a time; no polling: called at
 * start-up, when the channel list changes and after reconnects). `onlyMissing` skips
 * channels already counted, whose counts are kept live by the STOMP subscriptions.
 */
async function countUnread(onlyMissing: boolean): Promise<void> {
  const todo: ChannelDto[] = [];
  const empty: Record<string, Unread> = {};
  for (const c of channels.value) {
    if (onlyMissing && unread.value[c.id]) continue;
    if (newerThanRead(c)) todo.push(c);
    else empty[c.id] = { ids: [], more: false };
  }
  if (Object.keys(empty).length) unread.value = { ...unread.value, ...empty };
  const next = async (): Promise<void> => {
    const c = todo.shift();
    if (!c) return;
    await countChannel(c);
    return next();
  };
  await Promise.all([next(), next(), next()]);
}

/** A new message: one more unread unless the user is looking at it (or wrote it). */
function countArrival(m: MessageDto): void {
  if (seeing(m.channelId) || !unreadMessage(m)) {
    if (!unread.value[m.channelId]) setUnread(m.channelId, { ids: [], more: false });
    return;
  }
  const u = unread.value[m.channelId] ?? { ids: [], more: false };
  if (!u.ids.includes(m.id)) setUnread(m.channelId, { ids: [...u.ids, m.id], more: u.more });
}

function clearUnread(channelId: string): void {
  readGen.set(channelId, (readGen.get(channelId) ?? 0) + 1);
  const u = unread.value[channelId];
  if (!u || u.ids.length || u.more) setUnread(channelId, { ids: [], more: false });
}

effect(() => {
  const t = totalUnread.value;
  document.title = t.n ? `(${countLabel(t)}) discodeit` : 'discodeit';
});

const refetchUsersSoon = debounce(() => void loadUsers(), 250);
const refetchChannelsSoon = debounce(() => void loadChannels(), 250);

// ---- channel / messages --------------------------------------------------------------------

let loadGen = 0;

export function channelDest(id: string): string {
  return `/sub/channels.${id}.messages`;
}

/** Edits and deletions of the channel's messages. */
export function messageEventsDest(id: string): string {
  return `/sub/channels.${id}.message-events`;
}

export async function openChannel(id: string): Promise<void> {
  if (currentChannelId.value === id && paging.value.loaded) {
    sidebarOpen.value = false;
    return;
  }
  const gen = ++loadGen;
  batch(() => {
    currentChannelId.value = id;
    editingId.value = null;
    messages.value = [];
    paging.value = { nextCursor: null, hasNext: false, loading: true, loaded: false };
    sidebarOpen.value = false;
  });
  if (location.hash !== `#/c/${id}`) history.replaceState(null, '', `#/c/${id}`);
  try {
    const page = await api.get<PageResponse<MessageDto>>('/messages', {
      query: { channelId: id, size: PAGE_SIZE, sort: 'createdAt,desc' },
    });
    if (gen !== loadGen) return;
    batch(() => {
      mergeMessages(page.content);
      paging.value = { nextCursor: page.nextCursor, hasNext: page.hasNext, loading: false, loaded: true };
    });
  } catch (e) {
    if (gen !== loadGen) return;
    paging.value = { ...paging.value, loading: false, loaded: true };
    showError(e, 'Loading messages');
  }
  void markRead(id);
}

export function closeChannel(): void {
  loadGen++;
  batch(() => {
    currentChannelId.value = null;
    editingId.value = null;
    messages.value = [];
    paging.value = { nextCursor: null, hasNext: false, loading: false, loaded: false };
  });
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
}

export async function loadOlder(): Promise<void> {
  const id = currentChannelId.value;
  const p = paging.value;
  if (!id || p.loading || !p.hasNext || !p.nextCursor) return;
  const gen = loadGen;
  paging.value = { ...p, loading: true };
  try {
    const page = await api.get<PageResponse<MessageDto>>('/messages', {
      query: { channelId: id, cursor: p.nextCursor, size: PAGE_SIZE, sort: 'createdAt,desc' },
    });
    if (gen !== loadGen) return;
    batch(() => {
      mergeMessages(page.content);
      paging.value = {
        nextCursor: page.nextCursor ?? p.nextCursor,
        hasNext: page.hasNext && page.content.length > 0,
        loading: false,
        loaded: true,
      };
    });
  } catch (e) {
    if (gen !== loadGen) return;
    paging.value = { ...paging.value, loading: false };
    showError(e, 'Loading older messages');
  }
}

/** Fetch the newest page of the open channel and merge it (fills gaps after a reconnect). */
async function refreshNewest(): Promise<void> {
  const id = currentChannelId.value;
  if (!id) return;
  const gen = loadGen;
  try {
    const page = await api.get<PageResponse<MessageDto>>('/messages', {
      query: { channelId: id, size: PAGE_SIZE, sort: 'createdAt,desc' },
    });
    if (gen !== loadGen) return;
    mergeMessages(page.content);
    if (!paging.value.loaded) paging.value = { nextCursor: page.nextCursor, hasNext: page.hasNext, loading: false, loaded: true };
  } catch {
    /* the next reconnect tries again */
  }
}

const readInflight = new Map<string, Promise<void>>();

export function markRead(channelId: string): Promise<void> {
  const prev = readInflight.get(channelId) ?? Promise.resolve();
  const next = prev.then(() => doMarkRead(channelId));
  readInflight.set(channelId, next);
  void next.finally(() => {
    if (readInflight.get(channelId) === next) readInflight.delete(channelId);
  });
  return next;
}

async function doMarkRead(channelId: string): Promise<void> {
  const uid = me.value?.id;
  if (!uid) return;
  const ch = channels.value.find((c) => c.id === channelId);
  const lastReadAt = serverNowIso(ch?.lastMessageAt);
  const existing = readStatuses.value[channelId];
  clearUnread(channelId);
  try {
    let rs: ReadStatusDto;
    if (existing) {
      rs = await api.patch<ReadStatusDto>(`/readStatuses/${existing.id}`, {
        json: { newLastReadAt: lastReadAt, newNotificationEnabled: null },
      });
    } else {
      try {
        rs = await api.post<ReadStatusDto>('/readStatuses', { json: { userId: uid, channelId, lastReadAt } });
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 409) throw e;
        await loadReadStatuses();
        const again = readStatuses.value[channelId];
        if (!again) return;
        rs = await api.patch<ReadStatusDto>(`/readStatuses/${again.id}`, {
          json: { newLastReadAt: lastReadAt, newNotificationEnabled: null },
        });
      }
    }
    if (rs && rs.channelId) readStatuses.value = { ...readStatuses.value, [channelId]: rs };
  } catch (e) {
    if (e instanceof ApiError && e.status === 400 && /시간|future|lastReadAt/i.test(JSON.stringify(e.body ?? {}))) {
      clockSkew -= 5000; // our clock runs ahead of the server's
      return;
    }
    if (me.value) showError(e, 'Updating read status', true);
  }
}

const markCurrentReadSoon = debounce(() => {
  const id = currentChannelId.value;
  if (id && document.visibilityState === 'visible') void markRead(id);
}, 800);

function onChannelMessage(raw: unknown): void {
  const m = raw as MessageDto;
  if (!m || typeof m !== 'object' || !m.id || !m.channelId) return;
  if (!bumpLastMessageAt(m.channelId, m.createdAt)) refetchChannelsSoon();
  countArrival(m);
  if (m.channelId === currentChannelId.value) {
    mergeMessages([m]);
    markCurrentReadSoon();
  }
}

/** `/sub/channels.{id}.message-events`: `{type: 'updated', message}` or
 * `{type: 'deleted', messageId, channelId}`. */
function onMessageEvent(raw: unknown): void {
  const e = raw as { type?: string; message?: MessageDto; messageId?: string; channelId?: string };
  if (!e || typeof e !== 'object') return;
  if (e.type === 'updated' && e.message?.id) {
    const m = e.message;
    // only messages already on screen; older ones arrive edited with their page
    if (m.channelId === currentChannelId.value && messages.value.some((x) => x.id === m.id)) mergeMessages([m]);
  } else if (e.type === 'deleted' && e.messageId && e.channelId) {
    forgetMessage(e.channelId, e.messageId);
  }
}

function forgetMessage(channelId: string, id: string): void {
  deletedIds.add(id);
  batch(() => {
    if (messages.value.some((m) => m.id === id)) messages.value = messages.value.filter((m) => m.id !== id);
    if (editingId.value === id) editingId.value = null;
    const u = unread.value[channelId];
    if (u?.ids.includes(id)) setUnread(channelId, { ids: u.ids.filter((x) => x !== id), more: u.more });
  });
}

// ---- realtime ------------------------------------------------------------------------------

let stomp: StompLink | null = null;
let sse: FetchEventSource | null = null;

function syncSubscriptions(): void {
  if (!stomp) return;
  const want = new Map<string, (body: unknown) => void>();
  for (const c of channels.value) {
    want.set(channelDest(c.id), onChannelMessage);
    want.set(messageEventsDest(c.id), onMessageEvent);
  }
  for (const d of denied) want.delete(d);
  for (const d of subscribed) {
    if (!want.has(d)) {
      stomp.unsubscribe(d);
      subscribed.delete(d);
    }
  }
  for (const [d, handler] of want) {
    if (!subscribed.has(d)) {
      stomp.subscribe(d, handler);
      subscribed.add(d);
    }
  }
}
const subscribed = new Set<string>();
/** destinations the server refused; never retried during this session */
const denied = new Set<string>();

async function refreshWaitingAttachments(): Promise<void> {
  const ids: string[] = [];
  for (const m of messages.value)
    for (const a of m.attachments) if ((binStatus.value[a.id] ?? a.uploadStatus) === 'WAITING') ids.push(a.id);
  if (!ids.length) return;
  try {
    const q = new URLSearchParams();
    for (const id of ids) q.append('binaryContentIds', id);
    const list = await api.get<BinaryContentDto[]>(`/binaryContents?${q.toString()}`);
    const next = { ...binStatus.value };
    for (const b of list) next[b.id] = b.uploadStatus;
    binStatus.value = next;
  } catch {
    /* ignore */
  }
}

function onSseEvent(name: string, data: string): void {
  let body: unknown = null;
  try {
    body = data ? JSON.parse(data) : null;
  } catch {
    body = data;
  }
  switch (name) {
    case 'notifications': {
      const n = body as NotificationDto;
      if (!n || !n.id) return;
      if (notifications.value.some((x) => x.id === n.id)) break;
      notifications.value = [n, ...notifications.value];
      desktopNotify(n);
      if (n.type === 'NEW_MESSAGE' && n.targetId && n.targetId !== currentChannelId.value) {
        if (!bumpLastMessageAt(n.targetId, n.createdAt)) refetchChannelsSoon();
      }
      if (n.type === 'ROLE_CHANGED') toast('info', n.title, [n.content]);
      if (n.type === 'ASYNC_FAILED') toast('error', n.title, n.content.split('\n'));
      break;
    }
    case 'binaryContents.status': {
      const b = body as BinaryContentDto;
      if (b && b.id && b.uploadStatus) binStatus.value = { ...binStatus.value, [b.id]: b.uploadStatus };
      break;
    }
    case 'channels.refresh':
      refetchChannelsSoon();
      break;
    case 'users.refresh':
      refetchUsersSoon();
      break;
    case 'reset':
      void resync();
      break;
    default:
      break; // connect, ping, unknown names
  }
}

async function resync(): Promise<void> {
  await Promise.all([loadUsers(), loadChannels(), loadReadStatuses(), mergeNotifications(), refreshNewest()]);
  void refreshWaitingAttachments();
  void countUnread(false);
}

// ---- browser notifications -----------------------------------------------------------------

/** Asks for the permission (from a click: browsers ignore requests without a gesture). */
export async function enableDesktopNotifications(): Promise<void> {
  if (typeof Notification === 'undefined') return;
  try {
    desktopPermission.value = await Notification.requestPermission();
  } catch {
    desktopPermission.value = Notification.permission;
  }
}

/** Shows `n` as a browser notification while the tab is hidden; a click opens its channel. */
function desktopNotify(n: NotificationDto): void {
  if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  if (document.visibilityState !== 'hidden') return;
  try {
    const note = new Notification(n.title, { body: n.content, tag: n.id });
    note.addEventListener('click', () => {
      window.focus();
      note.close();
      if (n.type === 'NEW_MESSAGE' && n.targetId) {
        void openChannel(n.targetId);
        void dismissNotification(n.id);
      }
    });
  } catch {
    /* e.g. constructor not allowed outside a service worker (Android) */
  }
}

async function mergeNotifications(): Promise<void> {
  try {
    const list = await api.get<NotificationDto[]>('/notifications');
    notifications.value = list;
  } catch {
    /* ignore */
  }
}

function startRealtime(): void {
  stopRealtime();
  stomp = new StompLink({
    token: getToken,
    refresh: async () => !!(await refreshOrLogout()),
    onState: (s) => (stompState.value = s),
    onConnected: (reconnect) => {
      stompConnects.value++;
      if (reconnect) {
        void refreshNewest();
        // messages published while disconnected were not counted: recount on fresh lists
        void loadChannels().then(() => (countsReady ? countUnread(false) : undefined));
      }
    },
    onError: (msg) => console.warn('STOMP error:', msg),
    onDenied: (dest) => {
      subscribed.delete(dest);
      denied.add(dest);
      refetchChannelsSoon();
    },
  });
  subscribed.clear();
  syncSubscriptions();
  sse = new FetchEventSource({
    url: '/api/sse',
    token: getToken,
    onEvent: (e) => onSseEvent(e.event, e.data),
    onState: (s) => (sseState.value = s),
    onOpen: (reconnect) => {
      sseConnects.value++;
      if (reconnect) void resync();
      else {
        // Changes between the initial page load and this stream going live were not pushed
        // to us: refetch the lists once the stream is live so nothing is missed.
        refetchUsersSoon();
        refetchChannelsSoon();
        void refreshWaitingAttachments();
      }
    },
    onUnauthorized: async () => !!(await refreshOrLogout()),
  });
}

function stopRealtime(): void {
  stomp?.stop();
  stomp = null;
  subscribed.clear();
  denied.clear();
  sse?.close();
  sse = null;
  stompState.value = 'idle';
  sseState.value = 'idle';
}

window.addEventListener('online', () => {
  sse?.kick();
  stomp?.kick();
});
document.addEventListener('visibilitychange', () => {
  pageVisible.value = document.visibilityState === 'visible';
  if (desktopPermission.value !== 'unsupported') desktopPermission.value = Notification.permission;
  if (pageVisible.value) {
    const c = currentChannel.value;
    if (!c) return;
    const u = unread.value[c.id];
    if ((u && u.ids.length) || (readStatuses.value[c.id] && newerThanRead(c))) void markRead(c.id);
  }
});

// ---- sending -------------------------------------------------------------------------------

export async function sendMessage(content: string, files: File[]): Promise<void> {
  const channelId = currentChannelId.value;
  const authorId = me.value?.id;
  if (!channelId || !authorId) return;
  const body = { content, channelId, authorId };
  if (!files.length && stomp?.publish('/pub/messages', body)) return;
  const form = new FormData();
  form.append('messageCreateRequest', jsonBlob(body));
  for (const f of files) form.append('attachments', f, f.name);
  // The created message reaches the list through the STOMP broadcast; the response is ignored.
  await api.post<MessageDto>('/messages', { form });
}

// ---- auth / session ------------------------------------------------------------------------

function restoreChannelFromHash(): void {
  const m = /^#\/c\/([0-9a-fA-F-]{36})$/.exec(location.hash);
  if (m && channels.value.some((c) => c.id === m[1])) void openChannel(m[1]);
  else {
    const first = channels.value.find((c) => c.type === 'PUBLIC') ?? channels.value[0];
    if (first && window.innerWidth > 700) void openChannel(first.id);
  }
}

async function startSession(token: string): Promise<void> {
  const user = decodeUser(token);
  if (!user) throw new ApiError(0, { message: 'The server returned a token without userDto' }, null, 'Bad token');
  setToken(token);
  batch(() => {
    me.value = user;
    channelsLoaded.value = false;
  });
  startRealtime();
  await Promise.all([loadUsers(), loadChannels(), loadReadStatuses(), loadNotifications()]);
  if (me.value?.id === user.id) {
    restoreChannelFromHash();
    countsReady = true;
    void countUnread(false);
  }
}

function endSession(): void {
  stopRealtime();
  setToken(null);
  loadGen++;
  countsReady = false;
  deletedIds.clear();
  readGen.clear();
  batch(() => {
    me.value = null;
    users.value = [];
    channels.value = [];
    channelsLoaded.value = false;
    readStatuses.value = {};
    unread.value = {};
    editingId.value = null;
    lightbox.value = null;
    confirmDialog.value = null;
    currentChannelId.value = null;
    messages.value = [];
    paging.value = { nextCursor: null, hasNext: false, loading: false, loaded: false };
    binStatus.value = {};
    notifications.value = [];
    modal.value = null;
    stompConnects.value = 0;
    sseConnects.value = 0;
  });
}

onAuthLost(() => {
  if (!me.value) return;
  endSession();
  void fetchCsrf();
  toast('error', 'Your session has ended. Please log in again.');
});

// Renew the access token shortly before it expires, so that an open client keeps its session
// (and its "online" state) without first running into a 401. Driven by the token's `exp`,
// not a polling loop: one timer per token.
let renewTimer: number | undefined;
function scheduleRenewal(t: string | null): void {
  window.clearTimeout(renewTimer);
  if (!t) return;
  const p = decodePayload(t);
  const exp = typeof p?.exp === 'number' ? p.exp * 1000 : 0;
  const iat = typeof p?.iat === 'number' ? p.iat * 1000 : Date.now();
  if (!exp) return;
  const life = Math.max(exp - iat, 10_000);
  const lead = Math.min(60_000, life * 0.2);
  const delay = Math.max(5_000, exp - lead - Date.now() - clockSkew) + Math.random() * Math.min(5_000, lead / 2);
  if (delay > 2 ** 31 - 1) return;
  renewTimer = window.setTimeout(() => {
    if (getToken() === t && me.value) void refreshOrLogout();
  }, delay);
}

onTokenChange((t) => {
  scheduleRenewal(t);
  if (!t) return;
  const u = decodeUser(t);
  if (u && me.value && u.id === me.value.id) me.value = { ...u, online: true };
});

export async function boot(): Promise<void> {
  try {
    const [, body] = await Promise.all([
      fetchCsrf(),
      api.get<unknown>('/auth/me', { noAuth: true, noRefresh: true }).catch(() => null),
    ]);
    if (body) {
      let token: string | null = null;
      try {
        token = tokenFromBody(body);
      } catch {
        token = null;
      }
      if (token) await startSession(token);
    }
  } catch (e) {
    showError(e, 'Resuming session');
  } finally {
    booting.value = false;
  }
}

export async function login(username: string, password: string): Promise<void> {
  if (!document.cookie.includes('XSRF-TOKEN=')) await fetchCsrf();
  let body: unknown;
  try {
    body = await api.post<unknown>('/auth/login', { json: { username, password }, noAuth: true, noRefresh: true });
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) {
      // stale CSRF cookie: fetch a new one and retry once
      await fetchCsrf();
      body = await api.post<unknown>('/auth/login', { json: { username, password }, noAuth: true, noRefresh: true });
    } else throw e;
  }
  const token = tokenFromBody(body);
  await fetchCsrf();
  await startSession(token);
}

export async function signup(username: string, email: string, password: string, profile: File | null): Promise<void> {
  if (!document.cookie.includes('XSRF-TOKEN=')) await fetchCsrf();
  const form = new FormData();
  form.append('userCreateRequest', jsonBlob({ username, email, password }));
  if (profile) form.append('profile', profile, profile.name);
  await api.post<UserDto>('/users', { form, noAuth: true, noRefresh: true });
  await fetchCsrf();
  await login(username, password);
}

export async function logout(): Promise<void> {
  try {
    await api.post('/auth/logout', { noAuth: true, noRefresh: true });
  } catch {
    /* logout never fails on the server; ignore network trouble */
  }
  endSession();
  history.replaceState(null, '', location.pathname + location.search);
  await fetchCsrf();
}

// ---- other mutations -----------------------------------------------------------------------

export async function createPublicChannel(name: string, description: string): Promise<void> {
  const ch = await api.post<ChannelDto>('/channels/public', { json: { name, description: description || null } });
  if (!channels.value.some((c) => c.id === ch.id)) channels.value = [...channels.value, ch];
  syncSubscriptions();
  void openChannel(ch.id);
}

export async function createPrivateChannel(participantIds: string[]): Promise<void> {
  const uid = me.value!.id;
  const ids = [uid, ...participantIds.filter((x) => x !== uid)];
  const ch = await api.post<ChannelDto>('/channels/private', { json: { participantIds: ids } });
  if (!channels.value.some((c) => c.id === ch.id)) channels.value = [...channels.value, ch];
  syncSubscriptions();
  await loadReadStatuses();
  void openChannel(ch.id);
}

export async function dismissNotification(id: string): Promise<void> {
  const before = notifications.value;
  notifications.value = before.filter((n) => n.id !== id);
  try {
    await api.del(`/notifications/${id}`);
  } catch (e) {
    notifications.value = before;
    showError(e, 'Dismissing notification');
  }
}

export async function updateProfile(
  userId: string,
  changes: { newUsername?: string; newEmail?: string; newPassword?: string },
  profile: File | null,
): Promise<void> {
  const form = new FormData();
  form.append('userUpdateRequest', jsonBlob(changes));
  if (profile) form.append('profile', profile, profile.name);
  await api.patch<UserDto>(`/users/${userId}`, { form });
  const t = await refreshToken().catch(() => null);
  if (t) {
    const u = decodeUser(t);
    if (u) me.value = u;
  }
  await loadUsers();
}

export async function changeRole(userId: string, newRole: Role): Promise<UserDto> {
  const u = await api.put<UserDto>('/auth/role', { json: { userId, newRole } });
  await loadUsers();
  return u;
}

// ---- message and channel management --------------------------------------------------------

/** `PATCH /api/messages/{id}` (the author only); every client gets the event. */
export async function editMessage(id: string, content: string): Promise<void> {
  const m = await api.patch<MessageDto>(`/messages/${id}`, { json: { newContent: content } });
  if (m && m.id && m.channelId === currentChannelId.value) mergeMessages([m]);
}

/** `DELETE /api/messages/{id}` (the author, or an admin). */
export async function deleteMessage(m: MessageDto): Promise<void> {
  await api.del(`/messages/${m.id}`);
  forgetMessage(m.channelId, m.id);
}

export function canEdit(m: MessageDto): boolean {
  return mine(m);
}

export function canDelete(m: MessageDto): boolean {
  return mine(m) || me.value?.role === 'ADMIN';
}

/** Renaming, describing and deleting public channels: CHANNEL_MANAGER or ADMIN. */
export function canManage(c: ChannelDto | null): boolean {
  return !!c && c.type === 'PUBLIC' && hasRole(me.value?.role, 'CHANNEL_MANAGER');
}

/** `PATCH /api/channels/{id}` with the fields that changed. */
export async function updateChannel(id: string, changes: { newName?: string; newDescription?: string }): Promise<void> {
  const ch = await api.patch<ChannelDto>(`/channels/${id}`, { json: changes });
  if (!ch || !ch.id) return;
  channels.value = channels.value.map((c) =>
    c.id !== ch.id ? c : { ...ch, lastMessageAt: tsKey(c.lastMessageAt) > tsKey(ch.lastMessageAt) ? c.lastMessageAt : ch.lastMessageAt },
  );
}

/** `DELETE /api/channels/{id}`; everyone else learns it through `channels.refresh`. */
export async function deleteChannel(id: string): Promise<void> {
  await api.del(`/channels/${id}`);
  batch(() => {
    channels.value = channels.value.filter((c) => c.id !== id);
    setUnread(id, null);
    if (currentChannelId.value === id) closeChannel();
  });
  syncSubscriptions();
}
