import { useEffect, useRef, useState } from 'preact/hooks';
import { currentChannel, editingId, me, messages, sendMessage, showError, toast } from '../store';
import { channelTitle, formatSize } from '../util';
import { Spinner } from './Spinner';

const MAX_LEN = 2000;
const MAX_FILE = 10 * 1024 * 1024;
const MAX_TOTAL = 30 * 1024 * 1024;

export function Composer() {
  const ch = currentChannel.value;
  const [text, setText] = useState('');
  const [files, setFiles] = useState<File[]>([]);
  const [busy, setBusy] = useState(false);
  const [drag, setDrag] = useState(false);
  const taRef = useRef<HTMLTextAreaElement>(null);
  const fileRef = useRef<HTMLInputElement>(null);

  // reset the draft when switching channels
  useEffect(() => {
    setText('');
    setFiles([]);
    taRef.current?.focus();
  }, [ch?.id]);

  // auto-grow
  useEffect(() => {
    const ta = taRef.current;
    if (!ta) return;
    ta.style.height = 'auto';
    ta.style.height = `${Math.min(ta.scrollHeight, 240)}px`;
  }, [text]);

  if (!ch) return null;

  const addFiles = (list: FileList | File[] | null | undefined) => {
    if (!list) return;
    const add: File[] = [];
    for (const f of Array.from(list)) {
      if (f.size > MAX_FILE) toast('error', `${f.name} is larger than 10 MB`);
      else add.push(f);
    }
    const next = [...files, ...add];
    if (next.reduce((s, f) => s + f.size, 0) > MAX_TOTAL) {
      toast('error', 'Attachments may not exceed 30 MB in total');
      return;
    }
    setFiles(next);
  };

  const send = async () => {
    const content = text.trim();
    if (busy || (!content && !files.length)) return;
    if (content.length > MAX_LEN) {
      toast('error', `Messages are limited to ${MAX_LEN} characters`);
      return;
    }
    setBusy(true);
    try {
      await sendMessage(content, files);
      setText('');
      setFiles([]);
      if (fileRef.current) fileRef.current.value = '';
    } catch (e) {
      showError(e, 'Sending message');
    } finally {
      setBusy(false);
      taRef.current?.focus();
    }
  };

  const placeholder = ch.type === 'PUBLIC' ? `Message #${ch.name ?? ''}` : `Message ${channelTitle(ch, me.value?.id)}`;
  return (
    <form
      class={`composer${drag ? ' drag' : ''}`}
      data-testid="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
      onDragOver={(e) => {
        if (e.dataTransfer?.types.includes('Files')) {
          e.preventDefault();
          setDrag(true);
        }
      }}
      onDragLeave={() => setDrag(false)}
      onDrop={(e) => {
        e.preventDefault();
        setDrag(false);
        addFiles(e.dataTransfer?.files);
      }}
    >
      {files.length > 0 && (
        <ul class="pending-files" data-testid="composer-files">
          {files.map((f, i) => (
            <li key={`${f.name}-${i}`} class="pending-file" data-testid="composer-file-chip">
              <span class="file-name">{f.name}</span>
              <span class="file-size">{formatSize(f.size)}</span>
              <button
                type="button"
                class="icon-btn"
                aria-label={`Remove ${f.name}`}
                onClick={() => setFiles(files.filter((_, j) => j !== i))}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      <div class="composer-row">
        <button
          type="button"
          class="icon-btn attach"
          title="Attach files"
          aria-label="Attach files"
          data-testid="composer-attach"
          onClick={() => fileRef.current?.click()}
        >
          +
        </button>
        <input
          ref={fileRef}
          type="file"
          multiple
          hidden
          data-testid="composer-file-input"
          onChange={(e) => {
            addFiles(e.currentTarget.files);
            e.currentTarget.value = '';
          }}
        />
        <textarea
          ref={taRef}
          rows={1}
          data-testid="composer-input"
          placeholder={placeholder}
          value={text}
          maxLength={MAX_LEN + 500}
          onInput={(e) => setText(e.currentTarget.value)}
          aria-label={placeholder}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              void send();
            } else if (e.key === 'ArrowUp' && !text) {
              // like Discord: Up in an empty composer edits one's last message
              const uid = me.value?.id;
              const last = [...messages.value].reverse().find((m) => m.author?.id === uid);
              if (last) {
                e.preventDefault();
                editingId.value = last.id;
              }
            }
          }}
          onPaste={(e) => {
            const fl = e.clipboardData?.files;
            if (fl && fl.length) {
              e.preventDefault();
              addFiles(fl);
            }
          }}
        />
        <button
          type="submit"
          class="btn primary send"
          data-testid="composer-send"
          disabled={busy || (!text.trim() && !files.length)}
          aria-label="Send"
        >
          {busy ? <Spinner small /> : 'Send'}
        </button>
      </div>
      {text.length > MAX_LEN - 200 && (
        <div class={`char-count${text.length > MAX_LEN ? ' over' : ''}`}>
          {text.length}/{MAX_LEN}
        </div>
      )}
    </form>
  );
}
