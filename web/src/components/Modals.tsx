import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import {
  changeRole,
  confirmDialog,
  createPrivateChannel,
  createPublicChannel,
  currentChannel,
  me,
  modal,
  showError,
  toast,
  updateChannel,
  updateProfile,
  users,
} from '../store';
import type { Role } from '../types';
import { PASSWORD_RE, roleLabel } from '../util';
import { Avatar } from './Avatar';
import { Spinner } from './Spinner';

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([hidden]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * Keeps keyboard focus inside `root` while it is mounted (Tab and Shift+Tab wrap around),
 * closes on Escape, and gives focus back to `restore()` or else to what had it before.
 */
export function useFocusTrap(
  root: { current: HTMLElement | null },
  onClose: () => void,
  restore?: () => HTMLElement | null,
): void {
  const close = useRef(onClose);
  close.current = onClose;
  // what had focus before the first render (an autofocused field takes it on insertion)
  const opener = useRef<HTMLElement | null | undefined>(undefined);
  if (opener.current === undefined) opener.current = document.activeElement as HTMLElement | null;
  // A layout effect runs in the same commit that inserts the dialog, so Escape and Tab are
  // handled from the first moment it is visible (a plain effect waits for the next frame,
  // and a key pressed in between went to the page behind it).
  useLayoutEffect(() => {
    const before = opener.current;
    const el = root.current;
    if (el && !el.contains(document.activeElement)) {
      (el.querySelector<HTMLElement>('[autofocus]') ?? el.querySelector<HTMLElement>(FOCUSABLE) ?? el).focus();
    }
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        close.current();
      } else if (e.key === 'Tab' && root.current) {
        const items = Array.from(root.current.querySelectorAll<HTMLElement>(FOCUSABLE)).filter((x) => x.offsetParent !== null);
        if (!items.length) return;
        const first = items[0];
        const last = items[items.length - 1];
        const active = document.activeElement;
        if (e.shiftKey && (active === first || !root.current.contains(active))) {
          e.preventDefault();
          last.focus();
        } else if (!e.shiftKey && (active === last || !root.current.contains(active))) {
          e.preventDefault();
          first.focus();
        }
      }
    };
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('keydown', onKey);
      const back = restore?.() ?? before;
      if (back && back.isConnected) back.focus();
    };
  }, []);
}

let dialogSeq = 0;

function Dialog({
  title,
  testid,
  children,
  onClose = () => (modal.value = null),
}: {
  title: string;
  testid: string;
  children: ComponentChildren;
  onClose?: () => void;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [titleId] = useState(() => `dialog-title-${++dialogSeq}`);
  useFocusTrap(ref, onClose);
  return (
    <div
      class="modal-backdrop"
      onMouseDown={(e) => {
        if (e.target === e.currentTarget) onClose();
      }}
    >
      <div class="modal" role="dialog" aria-modal="true" aria-labelledby={titleId} data-testid={testid} ref={ref} tabIndex={-1}>
        <div class="modal-head">
          <h2 id={titleId}>{title}</h2>
          <button class="icon-btn" aria-label="Close" data-testid="modal-close" onClick={onClose}>
            ×
          </button>
        </div>
        {children}
      </div>
    </div>
  );
}

function CreatePublic() {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const n = name.trim();
    if (n.length < 2 || n.length > 50) {
      toast('error', 'Channel names are 2–50 characters long');
      return;
    }
    setBusy(true);
    try {
      await createPublicChannel(n, description.trim());
      modal.value = null;
    } catch (err) {
      showError(err, 'Creating channel');
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Create channel" testid="create-public-channel-dialog">
      <form class="modal-body" onSubmit={submit}>
        <label>
          Channel name
          <input data-testid="public-channel-name" value={name} maxLength={50} required onInput={(e) => setName(e.currentTarget.value)} autoFocus />
        </label>
        <label>
          <span>
            Description <span class="muted">(optional)</span>
          </span>
          <input
            data-testid="public-channel-description"
            value={description}
            maxLength={255}
            onInput={(e) => setDescription(e.currentTarget.value)}
          />
        </label>
        <div class="modal-foot">
          <button type="button" class="btn" onClick={() => (modal.value = null)}>
            Cancel
          </button>
          <button type="submit" class="btn primary" data-testid="public-channel-submit" disabled={busy}>
            {busy ? <Spinner small /> : 'Create'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function CreatePrivate() {
  const [filter, setFilter] = useState('');
  const [picked, setPicked] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const myId = me.value?.id;
  const q = filter.trim().toLowerCase();
  const candidates = users.value
    .filter((u) => u.id !== myId && (!q || u.username.toLowerCase().includes(q) || u.email.toLowerCase().includes(q)))
    .sort((a, b) => a.username.localeCompare(b.username));
  const toggle = (id: string) => setPicked(picked.includes(id) ? picked.filter((x) => x !== id) : [...picked, id]);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!picked.length) return;
    setBusy(true);
    try {
      await createPrivateChannel(picked);
      modal.value = null;
    } catch (err) {
      showError(err, 'Creating private channel');
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="New private channel" testid="create-private-channel-dialog">
      <form class="modal-body" onSubmit={submit}>
        <input
          data-testid="private-user-filter"
          placeholder="Search users"
          value={filter}
          onInput={(e) => setFilter(e.currentTarget.value)}
          autoFocus
        />
        <ul class="pick-list">
          {candidates.map((u) => (
            <li key={u.id}>
              <label class="pick" data-testid="private-user-option" data-user-id={u.id} data-username={u.username}>
                <input type="checkbox" checked={picked.includes(u.id)} onChange={() => toggle(u.id)} />
                <Avatar user={u} size={28} online={!!u.online} />
                <span>{u.username}</span>
                <span class="muted small">{u.email}</span>
              </label>
            </li>
          ))}
          {!candidates.length && <li class="empty-hint">No users found</li>}
        </ul>
        <div class="modal-foot">
          <span class="muted small">{picked.length} selected</span>
          <span class="spacer" />
          <button type="button" class="btn" onClick={() => (modal.value = null)}>
            Cancel
          </button>
          <button type="submit" class="btn primary" data-testid="private-channel-submit" disabled={busy || !picked.length}>
            {busy ? <Spinner small /> : 'Create'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function Profile() {
  const user = me.value!;
  const [username, setUsername] = useState(user.username);
  const [email, setEmail] = useState(user.email);
  const [password, setPassword] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!file) return setPreview(null);
    const url = URL.createObjectURL(file);
    setPreview(url);
    return () => URL.revokeObjectURL(url);
  }, [file]);
  const submit = async (e: Event) => {
    e.preventDefault();
    const changes: { newUsername?: string; newEmail?: string; newPassword?: string } = {};
    if (username.trim() !== user.username) changes.newUsername = username.trim();
    if (email.trim() !== user.email) changes.newEmail = email.trim();
    if (password) {
      if (!PASSWORD_RE.test(password)) {
        toast('error', 'Password: at least 8 characters with a letter, a digit and one of !@#$%^&*');
        return;
      }
      changes.newPassword = password;
    }
    if (!Object.keys(changes).length && !file) {
      modal.value = null;
      return;
    }
    setBusy(true);
    try {
      await updateProfile(user.id, changes, file);
      toast('info', 'Profile updated');
      modal.value = null;
    } catch (err) {
      showError(err, 'Updating profile');
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="My profile" testid="profile-dialog">
      <form class="modal-body" onSubmit={submit}>
        <div class="profile-preview">
          {preview ? <img class="avatar-preview" src={preview} alt="" /> : <Avatar user={user} size={72} />}
          <label class="btn">
            Change avatar
            <input data-testid="profile-file" type="file" accept="image/*" hidden onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)} />
          </label>
        </div>
        <label>
          Username
          <input data-testid="profile-username" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        </label>
        <label>
          Email
          <input data-testid="profile-email" type="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        <label>
          <span>
            New password <span class="muted">(leave empty to keep)</span>
          </span>
          <input
            data-testid="profile-password"
            type="password"
            autocomplete="new-password"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <div class="modal-foot">
          <button type="button" class="btn" onClick={() => (modal.value = null)}>
            Cancel
          </button>
          <button type="submit" class="btn primary" data-testid="profile-submit" disabled={busy}>
            {busy ? <Spinner small /> : 'Save'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function EditChannel() {
  const ch = currentChannel.value;
  const [name, setName] = useState(ch?.name ?? '');
  const [description, setDescription] = useState(ch?.description ?? '');
  const [busy, setBusy] = useState(false);
  if (!ch) return null;
  const submit = async (e: Event) => {
    e.preventDefault();
    const n = name.trim();
    const d = description.trim();
    if (n.length < 2 || n.length > 50) {
      toast('error', 'Channel names are 2–50 characters long');
      return;
    }
    const changes: { newName?: string; newDescription?: string } = {};
    if (n !== ch.name) changes.newName = n;
    if (d !== (ch.description ?? '')) changes.newDescription = d;
    if (!Object.keys(changes).length) {
      modal.value = null;
      return;
    }
    setBusy(true);
    try {
      await updateChannel(ch.id, changes);
      modal.value = null;
    } catch (err) {
      showError(err, 'Updating channel');
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Edit channel" testid="edit-channel-dialog">
      <form class="modal-body" onSubmit={submit}>
        <label>
          Channel name
          <input data-testid="edit-channel-name" value={name} maxLength={50} required onInput={(e) => setName(e.currentTarget.value)} autoFocus />
        </label>
        <label>
          <span>
            Description <span class="muted">(empty to clear)</span>
          </span>
          <input
            data-testid="edit-channel-description"
            value={description}
            maxLength={255}
            onInput={(e) => setDescription(e.currentTarget.value)}
          />
        </label>
        <div class="modal-foot">
          <button type="button" class="btn" onClick={() => (modal.value = null)}>
            Cancel
          </button>
          <button type="submit" class="btn primary" data-testid="edit-channel-submit" disabled={busy}>
            {busy ? <Spinner small /> : 'Save'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** The yes/no dialog of `confirmDialog` (deleting a message or a channel). */
export function ConfirmDialog() {
  const c = confirmDialog.value;
  const [busy, setBusy] = useState(false);
  if (!c) return null;
  const close = () => {
    if (confirmDialog.value === c) confirmDialog.value = null;
  };
  const run = async () => {
    setBusy(true);
    try {
      await c.run();
      close();
    } catch (err) {
      showError(err, c.title);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={c.title} testid="confirm-dialog" onClose={close}>
      <div class="modal-body">
        <p class="confirm-text">{c.text}</p>
        <div class="modal-foot">
          <button type="button" class="btn" data-testid="confirm-cancel" onClick={close}>
            Cancel
          </button>
          <button type="button" class="btn danger" data-testid="confirm-submit" disabled={busy} onClick={() => void run()} autoFocus>
            {busy ? <Spinner small /> : c.action}
          </button>
        </div>
      </div>
    </Dialog>
  );
}

const ROLES: Role[] = ['USER', 'CHANNEL_MANAGER', 'ADMIN'];

function Admin() {
  const [busy, setBusy] = useState<string | null>(null);
  const list = [...users.value].sort((a, b) => a.username.localeCompare(b.username));
  const set = async (userId: string, role: Role) => {
    setBusy(userId);
    try {
      const u = await changeRole(userId, role);
      toast('info', `${u.username} is now ${roleLabel(u.role)}`, ['They have to log in again to use the new role.']);
    } catch (err) {
      showError(err, 'Changing role');
    } finally {
      setBusy(null);
    }
  };
  return (
    <Dialog title="Roles" testid="admin-dialog">
      <div class="modal-body">
        <table class="role-table">
          <tbody>
            {list.map((u) => (
              <tr key={u.id} data-testid="admin-user-row" data-user-id={u.id} data-username={u.username}>
                <td>
                  <Avatar user={u} size={28} online={!!u.online} />
                </td>
                <td class="grow">
                  {u.username}
                  <div class="muted small">{u.email}</div>
                </td>
                <td>
                  {busy === u.id ? (
                    <Spinner small />
                  ) : (
                    <select
                      data-testid="admin-role-select"
                      data-user-id={u.id}
                      value={u.role}
                      disabled={u.id === me.value?.id}
                      onChange={(e) => void set(u.id, e.currentTarget.value as Role)}
                    >
                      {ROLES.map((r) => (
                        <option key={r} value={r}>
                          {roleLabel(r)}
                        </option>
                      ))}
                    </select>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Dialog>
  );
}

export function Modals() {
  switch (modal.value) {
    case 'createPublic':
      return <CreatePublic />;
    case 'createPrivate':
      return <CreatePrivate />;
    case 'profile':
      return <Profile />;
    case 'admin':
      return <Admin />;
    case 'editChannel':
      return <EditChannel />;
    default:
      return null;
  }
}
