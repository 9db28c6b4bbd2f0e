import {
  canManage,
  channelsLoaded,
  confirmDialog,
  currentChannel,
  deleteChannel,
  me,
  membersOpen,
  modal,
  sidebarOpen,
  usersById,
} from '../store';
import type { ChannelDto } from '../types';
import { channelTitle, otherParticipants } from '../util';
import { Bell } from './Bell';
import { Icon } from './Icons';
import { Composer } from './Composer';
import { MessageList } from './MessageList';

function askDeleteChannel(ch: ChannelDto): void {
  confirmDialog.value = {
    title: 'Delete channel',
    text: `Delete #${ch.name ?? ''} for everyone? Its messages and files are deleted too. This cannot be undone.`,
    action: 'Delete channel',
    run: () => deleteChannel(ch.id),
  };
}

export function ChatPane() {
  const ch = currentChannel.value;
  const myId = me.value?.id;
  let sub: string | null = null;
  if (ch?.type === 'PUBLIC') sub = ch.description || null;
  else if (ch) {
    const others = otherParticipants(ch, myId);
    const on = others.filter((p) => usersById.value[p.id]?.online).length;
    sub = `Private · ${others.length + 1} members${on ? ` · ${on} online` : ''}`;
  }
  return (
    <main class="chat">
      <header class="chat-header" data-testid="channel-header" data-channel-id={ch?.id ?? ''}>
        <button class="icon-btn only-mobile" aria-label="Channels" data-testid="sidebar-toggle" onClick={() => (sidebarOpen.value = !sidebarOpen.value)}>
          <Icon name="menu" size={20} />
        </button>
        {ch ? (
          <>
            <span class="chat-title" data-testid="channel-title">
              {ch.type === 'PUBLIC' ? <span class="hash">#</span> : <span class="hash">@</span>}
              {channelTitle(ch, myId)}
            </span>
            {sub && <span class="chat-sub">{sub}</span>}
          </>
        ) : (
          <span class="chat-title">discodeit</span>
        )}
        <span class="spacer" />
        {canManage(ch) && ch && (
          <>
            <button
              class="icon-btn"
              title="Edit channel"
              aria-label="Edit channel"
              data-testid="channel-edit-button"
              onClick={() => (modal.value = 'editChannel')}
            >
              <Icon name="pencil" size={20} />
            </button>
            <button
              class="icon-btn danger"
              title="Delete channel"
              aria-label="Delete channel"
              data-testid="channel-delete-button"
              onClick={() => askDeleteChannel(ch)}
            >
              <Icon name="trash" size={20} />
            </button>
          </>
        )}
        <Bell />
        <button
          class={`icon-btn${membersOpen.value ? ' active' : ''}`}
          title="Toggle member list"
          aria-label="Toggle member list"
          data-testid="members-toggle"
          onClick={() => (membersOpen.value = !membersOpen.value)}
        >
          <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
            <path
              fill="currentColor"
              d="M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8Zm6.5 0a3.5 3.5 0 1 0-1.2-6.8A6 6 0 0 1 15.5 11ZM2 20c0-3.3 3.1-6 7-6s7 2.7 7 6v1H2v-1Zm16 1v-1c0-2.1-.9-4-2.4-5.3C19.3 14.9 22 17.2 22 20v1h-4Z"
            />
          </svg>
        </button>
      </header>
      {ch ? (
        <>
          <MessageList />
          <Composer />
        </>
      ) : (
        <div class="empty-state" data-testid="no-channel">
          {channelsLoaded.value ? 'Pick a channel or start a conversation.' : 'Loading…'}
        </div>
      )}
    </main>
  );
}
