import { useState } from 'preact/hooks';
import { ApiError } from '../api';
import { login, showError, signup } from '../store';
import { PASSWORD_RE } from '../util';
import { Spinner } from './Spinner';

function LoginForm({ onSwitch }: { onSwitch: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await login(username.trim(), password);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setError('Invalid username or password.');
      else {
        setError(err instanceof Error ? err.message : String(err));
        showError(err, 'Login failed');
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="auth-card" data-testid="login-form" onSubmit={submit}>
      <h1>Welcome back!</h1>
      <p class="muted">We're so excited to see you again!</p>
      <label>
        Username
        <input
          data-testid="login-username"
          name="username"
          autocomplete="username"
          required
          value={username}
          onInput={(e) => setUsername(e.currentTarget.value)}
        />
      </label>
      <label>
        Password
        <input
          data-testid="login-password"
          name="password"
          type="password"
          autocomplete="current-password"
          required
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
      </label>
      {error && (
        <div class="form-error" data-testid="login-error" role="alert">
          {error}
        </div>
      )}
      <button class="btn primary wide" type="submit" data-testid="login-submit" disabled={busy}>
        {busy ? <Spinner small /> : 'Log In'}
      </button>
      <p class="muted small">
        Need an account?{' '}
        <button type="button" class="link" data-testid="goto-signup" onClick={onSwitch}>
          Register
        </button>
      </p>
    </form>
  );
}

function SignupForm({ onSwitch }: { onSwitch: () => void }) {
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [profile, setProfile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    const fe: Record<string, string> = {};
    const u = username.trim();
    if (u.length < 3 || u.length > 50) fe.username = 'Username must be 3–50 characters.';
    if (!/^[^@\s]+@[^@\s]+$/.test(email.trim())) fe.email = 'Enter a valid email address.';
    if (!PASSWORD_RE.test(password) || password.length > 60)
      fe.password = 'At least 8 characters with a letter, a digit and one of !@#$%^&*.';
    setFieldErrors(fe);
    if (Object.keys(fe).length) return;
    setBusy(true);
    setError(null);
    try {
      await signup(u, email.trim(), password, profile);
    } catch (err) {
      if (err instanceof ApiError && err.body?.details) {
        const d: Record<string, string> = {};
        for (const [k, v] of Object.entries(err.body.details)) d[k] = String(v);
        setFieldErrors(d);
      }
      setError(err instanceof Error ? err.message : String(err));
      showError(err, 'Sign-up failed');
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="auth-card" data-testid="signup-form" onSubmit={submit}>
      <h1>Create an account</h1>
      <label>
        Username
        <input
          data-testid="signup-username"
          name="username"
          autocomplete="username"
          required
          value={username}
          onInput={(e) => setUsername(e.currentTarget.value)}
        />
        {fieldErrors.username && <span class="field-error">{fieldErrors.username}</span>}
      </label>
      <label>
        Email
        <input
          data-testid="signup-email"
          name="email"
          type="email"
          autocomplete="email"
          required
          value={email}
          onInput={(e) => setEmail(e.currentTarget.value)}
        />
        {fieldErrors.email && <span class="field-error">{fieldErrors.email}</span>}
      </label>
      <label>
        Password
        <input
          data-testid="signup-password"
          name="password"
          type="password"
          autocomplete="new-password"
          required
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
        {fieldErrors.password && <span class="field-error">{fieldErrors.password}</span>}
      </label>
      <label>
        <span>
          Profile image <span class="muted">(optional)</span>
        </span>
        <input
          data-testid="signup-profile"
          name="profile"
          type="file"
          accept="image/*"
          onChange={(e) => setProfile(e.currentTarget.files?.[0] ?? null)}
        />
      </label>
      {error && (
        <div class="form-error" data-testid="signup-error" role="alert">
          {error}
        </div>
      )}
      <button class="btn primary wide" type="submit" data-testid="signup-submit" disabled={busy}>
        {busy ? <Spinner small /> : 'Continue'}
      </button>
      <p class="muted small">
        <button type="button" class="link" data-testid="goto-login" onClick={onSwitch}>
          Already have an account?
        </button>
      </p>
    </form>
  );
}

export function AuthScreen() {
  const [mode, setMode] = useState<'login' | 'signup'>('login');
  return (
    <div class="auth-screen">
      {mode === 'login' ? <LoginForm onSwitch={() => setMode('signup')} /> : <SignupForm onSwitch={() => setMode('login')} />}
    </div>
  );
}
