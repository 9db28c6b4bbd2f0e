import {
  channels,
  channelsLoaded,
  countLabel,
  currentChannelId,
  hasRole,
  logout,
  me,
  modal,
  openChannel,
  sidebarOpen,
  unreadCount,
  usersById,
} from '../store';
import type { ChannelDto } from '../types';
import { channelTitle, otherParticipants, roleLabel } from '../util';
import { Avatar } from './Avatar';
import { Icon } from './Icons';
import { ConnIndicator } from './ConnIndicator';
import { Spinner } from './Spinner';

function ChannelItem({ c }: { c: ChannelDto }) {
  const myId = me.value?.id;
  const active = currentChannelId.value === c.id;
  const count = unreadCount(c);
  const unread = count.n > 0;
  const title = channelTitle(c, myId);
  const news = !unread ? '' : count.counted ? `, ${countLabel(count)} unread` : ', unread';
  const label = `${c.type === 'PUBLIC' ? 'channel' : 'conversation'} ${title}${news}`;
  const others = otherParticipants(c, myId);
  const first = others[0] ?? null;
  const online = first ? usersById.value[first.id]?.online ?? null : null;
  return (
    <li>
      <button
        class={`channel-item${active ? ' active' : ''}${unread ? ' unread' : ''}`}
        data-testid="channel-item"
        data-channel-id={c.id}
        data-channel-type={c.type}
        data-unread={unread ? 'true' : 'false'}
        data-unread-count={count.n}
        aria-current={active ? 'page' : undefined}
        aria-label={label}
        onClick={() => void openChannel(c.id)}
        title={c.type === 'PUBLIC' ? c.description || c.name || '' : title}
      >
        {c.type === 'PUBLIC' ? (
          <span class="hash" aria-hidden="true">
            #
          </span>
        ) : others.length > 1 ? (
          <span class="group-icon" aria-hidden="true">
            {others.length + 1}
          </span>
        ) : (
          <Avatar user={first ?? me.value} size={28} online={others.length === 1 ? online : undefined} />
        )}
        <span class="channel-name" data-testid="channel-name">
          {title}
        </span>
        {unread &&
          (count.counted ? (
            <span class="unread-badge" data-testid="channel-unread" aria-hidden="true">
              {countLabel(count)}
            </span>
          ) : (
            <span class="unread-dot" data-testid="channel-unread" aria-hidden="true" />
          ))}
      </button>
    </li>
  );
}

export function Sidebar() {
  const user = me.value!;
  const list = channels.value;
  const pub = list.filter((c) => c.type === 'PUBLIC').sort((a, b) => (a.name ?? '').localeCompare(b.name ?? ''));
  const priv = list
    .filter((c) => c.type === 'PRIVATE')
    .sort((a, b) => (b.lastMessageAt > a.lastMessageAt ? 1 : b.lastMessageAt < a.lastMessageAt ? -1 : 0));
  const canCreatePublic = hasRole(user.role, 'CHANNEL_MANAGER');
  return (
    <nav class={`sidebar${sidebarOpen.value ? ' open' : ''}`} data-testid="sidebar" aria-label="Channels">
      <header class="sidebar-header">
        <span class="brand">discodeit</span>
      </header>
      <div class="channel-scroll" data-testid="channel-list">
        {!channelsLoaded.value && (
          <div class="center-pad">
            <Spinner />
          </div>
        )}
        <div class="section-title">
          <span>Channels</span>
          {canCreatePublic && (
            <button
              class="icon-btn"
              title="Create channel"
              aria-label="Create channel"
              data-testid="create-public-channel-button"
              onClick={() => (modal.value = 'createPublic')}
            >
              +
            </button>
          )}
        </div>
        <ul data-testid="public-channel-list">
          {pub.map((c) => (
            <ChannelItem key={c.id} c={c} />
          ))}
          {channelsLoaded.value && !pub.length && <li class="empty-hint">No channels yet</li>}
        </ul>
        <div class="section-title">
          <span>Direct messages</span>
          <button
            class="icon-btn"
            title="New private channel"
            aria-label="New private channel"
            data-testid="create-private-channel-button"
            onClick={() => (modal.value = 'createPrivate')}
          >
            +
          </button>
        </div>
        <ul data-testid="private-channel-list">
          {priv.map((c) => (
            <ChannelItem key={c.id} c={c} />
          ))}
          {channelsLoaded.value && !priv.length && <li class="empty-hint">No conversations yet</li>}
        </ul>
      </div>
      <ConnIndicator />
      <footer class="user-panel" data-testid="current-user" data-user-id={user.id} data-role={user.role}>
        <Avatar user={user} size={32} online />
        <div class="user-panel-names">
          <div class="user-panel-name" data-testid="current-username">
            {user.username}
          </div>
          <div class="user-panel-role">{roleLabel(user.role)}</div>
        </div>
        {user.role === 'ADMIN' && (
          <button class="icon-btn" title="Admin: roles" aria-label="Admin" data-testid="admin-button" onClick={() => (modal.value = 'admin')}>
            <Icon name="gear" />
          </button>
        )}
        <button class="icon-btn" title="Edit profile" aria-label="Edit profile" data-testid="profile-button" onClick={() => (modal.value = 'profile')}>
          <Icon name="pencil" />
        </button>
        <button class="icon-btn" title="Log out" aria-label="Log out" data-testid="logout-button" onClick={() => void logout()}>
          <Icon name="logout" />
        </button>
      </footer>
    </nav>
  );
}
