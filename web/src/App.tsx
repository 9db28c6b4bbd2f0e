import { AuthScreen } from './components/Auth';
import { ChatPane } from './components/ChatPane';
import { Lightbox } from './components/Lightbox';
import { Members } from './components/Members';
import { ConfirmDialog, Modals } from './components/Modals';
import { Sidebar } from './components/Sidebar';
import { Spinner } from './components/Spinner';
import { Toasts } from './components/Toasts';
import { booting, me, sidebarOpen } from './store';

export function App() {
  let body;
  if (booting.value) {
    body = (
      <div class="splash" data-testid="splash">
        <Spinner />
      </div>
    );
  } else if (!me.value) {
    body = <AuthScreen />;
  } else {
    body = (
      <div class="shell" data-testid="main-screen">
        <Sidebar />
        {sidebarOpen.value && <div class="scrim only-mobile" onClick={() => (sidebarOpen.value = false)} />}
        <ChatPane />
        <Members />
        <Modals />
        <ConfirmDialog />
        <Lightbox />
      </div>
    );
  }
  return (
    <>
      {body}
      <Toasts />
    </>
  );
}
