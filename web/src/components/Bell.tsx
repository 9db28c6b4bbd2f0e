import { useEffect, useRef, useState } from 'preact/hooks';
import { desktopPermission, dismissNotification, enableDesktopNotifications, notifications, openChannel, toast } from '../store';
import type { NotificationDto } from '../types';
import { formatTime } from '../util';

function Item({ n, close }: { n: NotificationDto; close: () => void }) {
  const clickable = n.type === 'NEW_MESSAGE' && !!n.targetId;
  const open = () => {
    if (!clickable) return;
    void openChannel(n.targetId!);
    void dismissNotification(n.id);
    close();
  };
  return (
    <li class={`notification ${n.type.toLowerCase()}`} data-testid="notification-item" data-notification-id={n.id} data-type={n.type}>
      <button class="notification-main" onClick={open} disabled={!clickable} data-testid="notification-open">
        <span class="notification-title">{n.title}</span>
        <span class="notification-content">{n.content}</span>
        <span class="notification-time">{formatTime(n.createdAt)}</span>
      </button>
      <div class="notification-actions">
        {n.type === 'ASYNC_FAILED' && (
          <button
            class="icon-btn"
            title="Copy details"
            aria-label="Copy details"
            onClick={() =>
              void navigator.clipboard?.writeText(n.content).then(
                () => toast('info', 'Copied'),
                () => toast('error', 'Could not copy'),
              )
            }
          >
            ⧉
          </button>
        )}
        <button class="icon-btn" title="Dismiss" aria-label="Dismiss" data-testid="notification-dismiss" onClick={() => void dismissNotification(n.id)}>
          ×
        </button>
      </div>
    </li>
  );
}

export function Bell() {
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  const list = notifications.value;
  useEffect(() => {
    if (!open) return;
    const onDoc = (e: MouseEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) setOpen(false);
    };
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && setOpen(false);
    document.addEventListener('mousedown', onDoc);
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('mousedown', onDoc);
      document.removeEventListener('keydown', onKey);
    };
  }, [open]);
  return (
    <div class="bell-wrap" ref={ref}>
      <button
        class={`icon-btn bell${list.length ? ' has' : ''}`}
        data-testid="notification-bell"
        data-count={list.length}
        aria-label={`Notifications (${list.length})`}
        aria-expanded={open}
        onClick={() => setOpen(!open)}
      >
        <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
          <path
            fill="currentColor"
            d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z"
          />
        </svg>
        {list.length > 0 && (
          <span class="badge" data-testid="notification-count">
            {list.length > 99 ? '99+' : list.length}
          </span>
        )}
      </button>
      {open && (
        <div class="dropdown notifications" data-testid="notification-list" role="region" aria-label="Notifications">
          <div class="dropdown-head">
            <span>Notifications</span>
            {list.length > 0 && (
              <button
                class="link"
                data-testid="notification-clear-all"
                onClick={() => {
                  for (const n of list) void dismissNotification(n.id);
                }}
              >
                Clear all
              </button>
            )}
          </div>
          {desktopPermission.value === 'default' && (
            <div class="dropdown-note">
              <button class="link" data-testid="notification-permission" onClick={() => void enableDesktopNotifications()}>
                Enable desktop notifications
              </button>{' '}
              <span class="muted">for messages that arrive while this tab is in the background</span>
            </div>
          )}
          {desktopPermission.value === 'denied' && (
            <div class="dropdown-note muted" data-testid="notification-permission-denied">
              Desktop notifications are blocked in the browser settings.
            </div>
          )}
          {list.length === 0 ? (
            <div class="empty-hint pad">You're all caught up.</div>
          ) : (
            <ul>
              {list.map((n) => (
                <Item key={n.id} n={n} close={() => setOpen(false)} />
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
