export function Spinner({ small }: { small?: boolean }) {
  return <span class={small ? 'spinner small' : 'spinner'} role="status" aria-label="Loading" />;
}
