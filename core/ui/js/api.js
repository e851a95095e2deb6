// The console's one way to the admin API: same origin, the session in its
// HttpOnly cookie (sent by the browser), the CSRF token in a header on
// every call that may change something. The token lives only in this
// module's memory; a reloaded page asks /api/v1/whoami for it again.
let csrf = '';
let onExpired = () => {};

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function setCsrf(token) { csrf = token || ''; }
export function onSessionExpired(fn) { onExpired = fn; }

export async function call(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let j = null;
  try { j = await r.json(); } catch { j = null; }
  if (!r.ok) {
    if (r.status === 401 && path !== '/api/v1/login') onExpired();
    throw new ApiError(r.status, (j && j.error) || r.statusText, j);
  }
  return j;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);
export const del = (path) => call('DELETE', path);

// A query string of the set values only.
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v != null) u.set(k, v);
  const s = u.toString();
  return s ? '?' + s : '';
}
