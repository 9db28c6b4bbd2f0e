import { me, membersOpen, users } from '../store';
import type { UserDto } from '../types';
import { roleLabel } from '../util';
import { Avatar } from './Avatar';

function Member({ u }: { u: UserDto }) {
  const online = !!u.online;
  return (
    <li
      class={`member${online ? '' : ' offline'}`}
      data-testid="member-item"
      data-user-id={u.id}
      data-username={u.username}
      data-online={online ? 'true' : 'false'}
      title={`${u.username} · ${roleLabel(u.role)}`}
    >
      <Avatar user={u} size={32} online={online} />
      <span class="member-name">
        {u.username}
        {u.id === me.value?.id && <span class="muted"> (you)</span>}
      </span>
      {u.role !== 'USER' && <span class={`role-badge ${u.role.toLowerCase()}`}>{u.role === 'ADMIN' ? 'admin' : 'mod'}</span>}
    </li>
  );
}

export function Members() {
  if (!membersOpen.value) return null;
  const sorted = [...users.value].sort((a, b) => a.username.localeCompare(b.username));
  const on = sorted.filter((u) => u.online);
  const off = sorted.filter((u) => !u.online);
  return (
    <aside class="members" data-testid="member-list" aria-label="Members">
      <div class="section-title">
        <span>Online — {on.length}</span>
      </div>
      <ul>
        {on.map((u) => (
          <Member key={u.id} u={u} />
        ))}
      </ul>
      <div class="section-title">
        <span>Offline — {off.length}</span>
      </div>
      <ul>
        {off.map((u) => (
          <Member key={u.id} u={u} />
        ))}
      </ul>
    </aside>
  );
}
