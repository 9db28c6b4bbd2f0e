import { useEffect, useState } from 'preact/hooks';
import { downloadUrl } from '../api';
import type { UserDto } from '../types';

function hue(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h % 360;
}

export function initials(name: string): string {
  const parts = name.trim().split(/[\s._-]+/).filter(Boolean);
  if (!parts.length) return '?';
  if (parts.length === 1) return Array.from(parts[0]).slice(0, 2).join('').toUpperCase();
  return (Array.from(parts[0])[0] + Array.from(parts[1])[0]).toUpperCase();
}

interface Props {
  user: UserDto | null | undefined;
  size?: number;
  online?: boolean | null;
}

const MAX_RETRIES = 3;

export function Avatar({ user, size = 40, online }: Props) {
  const name = user?.username ?? '?';
  const p = user?.profile;
  const key = p ? `${p.id}:${p.uploadStatus}` : '';
  // failed image loads for this key; a profile still WAITING is retried a few times
  const [fail, setFail] = useState<{ key: string; n: number; waiting: boolean }>({ key: '', n: 0, waiting: false });
  const failures = fail.key === key ? fail.n : 0;
  useEffect(() => {
    if (!fail.waiting || fail.key !== key || fail.n > MAX_RETRIES) return;
    const t = window.setTimeout(() => setFail({ ...fail, waiting: false }), 1000 * 2 ** fail.n);
    return () => window.clearTimeout(t);
  }, [fail, key]);
  const showImg = p && p.uploadStatus !== 'FAILED' && (failures === 0 || (!fail.waiting && p.uploadStatus === 'WAITING' && failures <= MAX_RETRIES));
  return (
    <span class="avatar" style={{ width: `${size}px`, height: `${size}px` }} data-testid="avatar">
      {showImg ? (
        <img
          key={`${key}:${failures}`}
          src={downloadUrl(p.id)}
          alt=""
          width={size}
          height={size}
          loading="lazy"
          onError={() => setFail({ key, n: failures + 1, waiting: true })}
        />
      ) : (
        <span
          class="avatar-initials"
          style={{ background: user ? `hsl(${hue(name)} 45% 42%)` : '#4e5058', fontSize: `${Math.round(size * 0.4)}px` }}
        >
          {user ? initials(name) : '?'}
        </span>
      )}
      {online !== undefined && online !== null && (
        <span class={`presence ${online ? 'on' : 'off'}`} title={online ? 'Online' : 'Offline'} />
      )}
    </span>
  );
}
