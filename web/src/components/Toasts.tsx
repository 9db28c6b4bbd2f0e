import { dismissToast, toasts } from '../store';

export function Toasts() {
  return (
    <div class="toasts" aria-live="polite">
      {toasts.value.map((t) => (
        <div key={t.id} class={`toast ${t.kind}`} data-testid="toast" data-kind={t.kind} role={t.kind === 'error' ? 'alert' : 'status'}>
          <div class="toast-body">
            <div class="toast-title">{t.title}</div>
            {t.lines.map((l, i) => (
              <div key={i} class="toast-line">
                {l}
              </div>
            ))}
          </div>
          <button class="icon-btn" data-testid="toast-close" aria-label="Dismiss" onClick={() => dismissToast(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
