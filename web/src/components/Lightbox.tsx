import { useRef } from 'preact/hooks';
import { downloadUrl } from '../api';
import { lightbox } from '../store';
import { formatSize } from '../util';
import { useFocusTrap } from './Modals';

/** An image attachment at full size over the page; Escape, the close button or a click
 * beside the image closes it. */
export function Lightbox() {
  const a = lightbox.value;
  if (!a) return null;
  return <LightboxView key={a.id} />;
}

function LightboxView() {
  const a = lightbox.value!;
  const ref = useRef<HTMLDivElement>(null);
  const close = () => (lightbox.value = null);
  // back to the thumbnail that opened it (a click does not focus links in every browser)
  useFocusTrap(ref, close, () =>
    document.querySelector<HTMLElement>(`[data-testid="message-list"] [data-attachment-id="${a.id}"]`),
  );
  const url = downloadUrl(a.id);
  return (
    <div
      class="lightbox"
      role="dialog"
      aria-modal="true"
      aria-label={`Image ${a.fileName}`}
      data-testid="lightbox"
      ref={ref}
      onMouseDown={(e) => {
        if (e.target === e.currentTarget) close();
      }}
    >
      <figure class="lightbox-figure">
        <img data-testid="lightbox-image" src={url} alt={a.fileName} />
        <figcaption>
          <span class="lightbox-name">{a.fileName}</span>
          <span class="muted small">{formatSize(a.size)}</span>
          <span class="spacer" />
          <a class="btn" href={url} download={a.fileName} data-testid="lightbox-download">
            Download
          </a>
          <a class="btn" href={url} target="_blank" rel="noopener">
            Open original
          </a>
          <button class="btn primary" data-testid="lightbox-close" onClick={close} autoFocus>
            Close
          </button>
        </figcaption>
      </figure>
    </div>
  );
}
