import type { ChannelDto, UserDto } from './types';

export function formatTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === now.toDateString()) return `Today at ${time}`;
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (d.toDateString() === y.toDateString()) return `Yesterday at ${time}`;
  return `${d.toLocaleDateString()} ${time}`;
}

export function formatFull(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function displayName(u: UserDto | null | undefined): string {
  return u ? u.username : 'Unknown';
}

/** Names for a channel in the sidebar / header. */
export function channelTitle(c: ChannelDto, myId: string | undefined): string {
  if (c.type === 'PUBLIC') return c.name ?? '(unnamed)';
  const others = c.participants.filter((p) => p.id !== myId);
  if (!others.length) return 'Just you';
  return others
    .map((p) => p.username)
    .sort((a, b) => a.localeCompare(b))
    .join(', ');
}

export function otherParticipants(c: ChannelDto, myId: string | undefined): UserDto[] {
  return c.participants.filter((p) => p.id !== myId);
}

export function roleLabel(r: string): string {
  return r === 'CHANNEL_MANAGER' ? 'Channel manager' : r === 'ADMIN' ? 'Admin' : 'User';
}

const URL_RE = /\bhttps?:\/\/[^\s<>"')\]]+/g;

/** Splits text into plain and URL pieces for linkification. */
export function linkParts(text: string): Array<{ url?: string; text: string }> {
  const out: Array<{ url?: string; text: string }> = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    const i = m.index ?? 0;
    if (i > last) out.push({ text: text.slice(last, i) });
    out.push({ url: m[0], text: m[0] });
    last = i + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

export const PASSWORD_RE = /^(?=.*[0-9])(?=.*[a-zA-Z])(?=.*[!@#$%^&*]).{8,}$/;
