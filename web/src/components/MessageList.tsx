import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { downloadUrl } from '../api';
import {
  binStatus,
  canDelete,
  canEdit,
  confirmDialog,
  currentChannel,
  currentChannelId,
  deleteMessage,
  editMessage,
  editingId,
  lightbox,
  loadOlder,
  me,
  messages,
  paging,
  showError,
  toast,
  tsKey,
} from '../store';
import type { BinaryContentDto, MessageDto } from '../types';
import { channelTitle, displayName, formatFull, formatSize, formatTime, linkParts } from '../util';
import { Avatar } from './Avatar';
import { Icon } from './Icons';
import { Spinner } from './Spinner';

const MAX_LEN = 2000;

function Attachment({ a }: { a: BinaryContentDto }) {
  const status = binStatus.value[a.id] ?? a.uploadStatus;
  const isImage = a.contentType?.startsWith('image/');
  const common = {
    'data-testid': 'attachment',
    'data-attachment-id': a.id,
    'data-status': status,
    'data-content-type': a.contentType,
  };
  if (status === 'SUCCESS' && isImage) {
    // A plain link for middle-click / new tab; a click opens the lightbox.
    return (
      <a
        {...common}
        class="attachment image"
        href={downloadUrl(a.id)}
        target="_blank"
        rel="noopener"
        title={a.fileName}
        aria-label={`View image ${a.fileName}`}
        onClick={(e) => {
          if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
          e.preventDefault();
          lightbox.value = a;
        }}
      >
        <img data-testid="attachment-image" src={downloadUrl(a.id)} alt={a.fileName} loading="lazy" />
      </a>
    );
  }
  if (status === 'SUCCESS') {
    return (
      <a
        {...common}
        class="attachment file"
        href={downloadUrl(a.id)}
        download={a.fileName}
        data-kind="file"
        aria-label={`Download ${a.fileName} (${formatSize(a.size)})`}
      >
        <span class="file-icon" aria-hidden="true">
          📄
        </span>
        <span class="file-meta">
          <span class="file-name" data-testid="attachment-link">
            {a.fileName}
          </span>
          <span class="file-size">{formatSize(a.size)}</span>
        </span>
      </a>
    );
  }
  return (
    <div {...common} class={`attachment file ${status === 'FAILED' ? 'failed' : 'waiting'}`} aria-busy={status === 'WAITING'}>
      {status === 'WAITING' ? (
        <Spinner small />
      ) : (
        <span class="file-icon" aria-hidden="true">
          ⚠
        </span>
      )}
      <span class="file-meta">
        <span class="file-name">{a.fileName}</span>
        <span class="file-size">
          {status === 'WAITING' ? `Uploading… · ${formatSize(a.size)}` : 'Upload failed'}
        </span>
      </span>
    </div>
  );
}

function Content({ text, edited }: { text: string; edited: string | null }) {
  if (!text) return null;
  return (
    <div class="message-content" data-testid="message-content">
      {linkParts(text).map((p, i) =>
        p.url ? (
          <a key={i} href={p.url} target="_blank" rel="noopener noreferrer">
            {p.text}
          </a>
        ) : (
          p.text
        ),
      )}
      {edited && (
        <span class="edited" data-testid="message-edited" title={`Edited ${formatFull(edited)}`}>
          {' '}
          (edited)
        </span>
      )}
    </div>
  );
}

/** Inline editor: Enter saves, Shift+Enter is a new line, Escape cancels. */
function EditBox({ m }: { m: MessageDto }) {
  const [text, setText] = useState(m.content);
  const [busy, setBusy] = useState(false);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    const ta = ref.current;
    if (!ta) return;
    ta.focus();
    ta.setSelectionRange(ta.value.length, ta.value.length);
  }, []);
  useEffect(() => {
    const ta = ref.current;
    if (!ta) return;
    ta.style.height = 'auto';
    ta.style.height = `${Math.min(ta.scrollHeight, 240)}px`;
  }, [text]);
  const cancel = () => {
    editingId.value = null;
    document.querySelector<HTMLTextAreaElement>('[data-testid="composer-input"]')?.focus();
  };
  const save = async () => {
    const content = text.trim();
    if (busy) return;
    if (content === m.content) return cancel();
    if (!content) {
      toast('error', 'A message cannot be empty: delete it instead');
      return;
    }
    if (content.length > MAX_LEN) {
      toast('error', `Messages are limited to ${MAX_LEN} characters`);
      return;
    }
    setBusy(true);
    try {
      await editMessage(m.id, content);
      cancel();
    } catch (e) {
      showError(e, 'Editing message');
      setBusy(false);
    }
  };
  return (
    <div class="edit-box">
      <textarea
        ref={ref}
        rows={1}
        data-testid="message-edit-input"
        aria-label="Edit message"
        value={text}
        disabled={busy}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') {
            e.preventDefault();
            e.stopPropagation();
            cancel();
          } else if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void save();
          }
        }}
      />
      <div class="edit-hint">
        escape to{' '}
        <button type="button" class="link" data-testid="message-edit-cancel" onClick={cancel}>
          cancel
        </button>{' '}
        · enter to{' '}
        <button type="button" class="link" data-testid="message-edit-save" onClick={() => void save()}>
          save
        </button>
      </div>
    </div>
  );
}

export function askDeleteMessage(m: MessageDto): void {
  const ch = currentChannel.value;
  const where = ch ? (ch.type === 'PUBLIC' ? `#${ch.name ?? ''}` : channelTitle(ch, me.value?.id)) : 'this channel';
  const preview = m.content.length > 120 ? `${m.content.slice(0, 120)}…` : m.content;
  confirmDialog.value = {
    title: 'Delete message',
    text: `Delete this message from ${where}${preview ? `: “${preview}”` : ''}? This cannot be undone.`,
    action: 'Delete',
    run: () => deleteMessage(m),
  };
}

function Actions({ m }: { m: MessageDto }) {
  const edit = canEdit(m);
  const del = canDelete(m);
  if (!edit && !del) return null;
  return (
    <div class="message-actions" role="toolbar" aria-label="Message actions">
      {edit && (
        <button
          class="icon-btn"
          title="Edit"
          aria-label="Edit message"
          data-testid="message-edit"
          onClick={() => (editingId.value = m.id)}
        >
          <Icon name="pencil" size={16} />
        </button>
      )}
      {del && (
        <button
          class="icon-btn danger"
          title="Delete"
          aria-label="Delete message"
          data-testid="message-delete"
          onClick={() => askDeleteMessage(m)}
        >
          <Icon name="trash" size={16} />
        </button>
      )}
    </div>
  );
}

function MessageItem({ m, grouped }: { m: MessageDto; grouped: boolean }) {
  const mine = !!m.author && m.author.id === me.value?.id;
  const editing = editingId.value === m.id;
  const edited = tsKey(m.updatedAt) > tsKey(m.createdAt);
  return (
    <li
      class={`message${grouped ? ' grouped' : ''}${mine ? ' mine' : ''}${editing ? ' editing' : ''}`}
      data-testid="message-item"
      data-message-id={m.id}
      data-author-id={m.author?.id ?? ''}
      data-edited={edited ? 'true' : 'false'}
    >
      <div class="message-gutter">
        {grouped ? (
          <time class="hover-time" dateTime={m.createdAt} title={formatFull(m.createdAt)}>
            {new Date(m.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}
          </time>
        ) : (
          <Avatar user={m.author} size={40} />
        )}
      </div>
      <div class="message-body">
        {!grouped && (
          <div class="message-header">
            <span class={`message-author${m.author ? '' : ' unknown'}`} data-testid="message-author">
              {displayName(m.author)}
            </span>
            <time class="message-time" data-testid="message-time" dateTime={m.createdAt} title={formatFull(m.createdAt)}>
              {formatTime(m.createdAt)}
            </time>
          </div>
        )}
        {editing ? (
          <EditBox m={m} />
        ) : (
          <Content text={m.content} edited={edited ? m.updatedAt : null} />
        )}
        {m.attachments.length > 0 && (
          <div class="attachments">
            {m.attachments.map((a) => (
              <Attachment key={a.id} a={a} />
            ))}
          </div>
        )}
      </div>
      {!editing && <Actions m={m} />}
    </li>
  );
}

const GROUP_MS = 5 * 60 * 1000;

export function MessageList() {
  const scrollRef = useRef<HTMLDivElement>(null);
  const innerRef = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const anchor = useRef<{ height: number; top: number; firstId: string | null } | null>(null);
  const list = messages.value;
  const pg = paging.value;
  const channelId = currentChannelId.value;

  // new channel: stick to the bottom
  useLayoutEffect(() => {
    atBottom.current = true;
  }, [channelId]);

  // keep the view anchored when older messages are prepended, stick to the bottom otherwise
  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (!el) return;
    const a = anchor.current;
    const firstId = list[0]?.id ?? null;
    if (a && a.firstId !== firstId && !atBottom.current) {
      el.scrollTop = el.scrollHeight - a.height + a.top;
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
    anchor.current = null;
  }, [list]);

  // images and late layout changes: stay at the bottom if we were there
  useEffect(() => {
    const inner = innerRef.current;
    const el = scrollRef.current;
    if (!inner || !el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(() => {
      if (atBottom.current) el.scrollTop = el.scrollHeight;
    });
    ro.observe(inner);
    return () => ro.disconnect();
  }, []);

  // a page that does not fill the viewport: load more right away
  useEffect(() => {
    const el = scrollRef.current;
    if (!el || !pg.loaded || pg.loading || !pg.hasNext) return;
    if (el.scrollHeight <= el.clientHeight + 40) {
      anchor.current = { height: el.scrollHeight, top: el.scrollTop, firstId: list[0]?.id ?? null };
      void loadOlder();
    }
  }, [list, pg.loaded, pg.loading, pg.hasNext]);

  const onScroll = () => {
    const el = scrollRef.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
    if (el.scrollTop < 300 && pg.hasNext && !pg.loading) {
      anchor.current = { height: el.scrollHeight, top: el.scrollTop, firstId: list[0]?.id ?? null };
      void loadOlder();
    }
  };

  const items = [];
  let prev: MessageDto | null = null;
  for (const m of list) {
    const t = Date.parse(m.createdAt);
    let day: string | null = null;
    if (!prev || new Date(prev.createdAt).toDateString() !== new Date(m.createdAt).toDateString()) {
      day = new Date(m.createdAt).toLocaleDateString([], { year: 'numeric', month: 'long', day: 'numeric' });
    }
    const grouped =
      !day &&
      !!prev &&
      (prev.author?.id ?? null) === (m.author?.id ?? null) &&
      m.author !== null &&
      t - Date.parse(prev.createdAt) < GROUP_MS;
    if (day)
      items.push(
        <li key={`d-${m.id}`} class="day-divider" role="separator">
          <span>{day}</span>
        </li>,
      );
    items.push(<MessageItem key={m.id} m={m} grouped={grouped} />);
    prev = m;
  }

  return (
    <div
      class="message-scroll"
      ref={scrollRef}
      onScroll={onScroll}
      data-testid="message-list"
      data-has-next={pg.hasNext ? 'true' : 'false'}
      role="log"
      aria-label="Messages"
      tabIndex={0}
    >
      <div ref={innerRef} class="message-inner">
        {pg.loading && (
          <div class="center-pad" data-testid="messages-loading">
            <Spinner />
          </div>
        )}
        {pg.loaded && !pg.hasNext && (
          <div class="channel-start" data-testid="channel-start">
            This is the beginning of the conversation.
          </div>
        )}
        <ul class="messages">{items}</ul>
      </div>
    </div>
  );
}
