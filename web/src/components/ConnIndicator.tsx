import { sseConnects, sseState, stompConnects, stompState } from '../store';
import type { ConnState } from '../types';

const LABEL: Record<ConnState, string> = {
  idle: 'offline',
  connecting: 'connecting…',
  connected: 'connected',
  reconnecting: 'reconnecting…',
};

function Dot({ name, state, count, testid }: { name: string; state: ConnState; count: number; testid: string }) {
  return (
    <span class={`conn conn-${state}`} data-testid={testid} data-state={state} data-connects={count} title={`${name}: ${LABEL[state]}`}>
      <span class="conn-dot" />
      {name}
    </span>
  );
}

export function ConnIndicator() {
  const s = stompState.value;
  const e = sseState.value;
  const all = s === 'connected' && e === 'connected' ? 'connected' : s === 'idle' && e === 'idle' ? 'idle' : 'reconnecting';
  return (
    <div class="conn-indicator" data-testid="conn-indicator" data-state={all}>
      <Dot name="Chat" state={s} count={stompConnects.value} testid="conn-stomp" />
      <Dot name="Events" state={e} count={sseConnects.value} testid="conn-sse" />
    </div>
  );
}
