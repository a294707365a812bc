/** The dashboard's entry: restores the session from the refresh cookie, then renders the sign-in or the shell. */
import { render } from 'preact';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { startLive } from './live.ts';
import { restore, useSession } from './session.ts';
import { Shell } from './shell.tsx';
import { Login } from './views/login.tsx';

function App() {
  const s = useSession();
  if (s.status === 'loading')
    return (
      <p class="loading" role="status">
        Loading…
      </p>
    );
  if (s.status === 'signed-in') return <Shell user={s.user} />;
  return <Login state={s} />;
}

startLive();
render(<App />, document.getElementById('app')!);
void restore();
