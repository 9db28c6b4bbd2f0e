import { useEffect, useLayoutEffect, useRef } from 'preact/hooks';
import { downloadUrl } from '../api';
import { binStatus, currentChannelId, loadOlder, me, messages, paging } from '../store';
import type { BinaryContentDto, MessageDto } from '../types';
import { displayName, formatFull, formatSize, formatTime, linkParts } from '../util';
import { Avatar } from './Avatar';
import { Spinner } from './Spinner';

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
    return (
      <a {...common} class="attachment image" href={downloadUrl(a.id)} target="_blank" rel="noopener" title={a.fileName}>
        <img data-testid="attachment-image" src={downloadUrl(a.id)} alt={a.fileName} loading="lazy" />
      </a>
    );
  }
  if (status === 'SUCCESS') {
    return (
      <a {...common} class="attachment file" href={downloadUrl(a.id)} download={a.fileName} data-kind="file">
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

function Content({ text }: { text: string }) {
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
    </div>
  );
}

function MessageItem({ m, grouped }: { m: MessageDto; grouped: boolean }) {
  const mine = !!m.author && m.author.id === me.value?.id;
  return (
    <li
      class={`message${grouped ? ' grouped' : ''}${mine ? ' mine' : ''}`}
      data-testid="message-item"
      data-message-id={m.id}
      data-author-id={m.author?.id ?? ''}
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
        <Content text={m.content} />
        {m.attachments.length > 0 && (
          <div class="attachments">
            {m.attachments.map((a) => (
              <Attachment key={a.id} a={a} />
            ))}
          </div>
        )}
      </div>
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
    <div class="message-scroll" ref={scrollRef} onScroll={onScroll} data-testid="message-list" data-has-next={pg.hasNext ? 'true' : 'false'}>
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
