// The console's entry: who is signed in, the sign-in form, the header and
// the views chosen by the fragment (#/devices, #/device/ID). One page, no
// build step, no third-party code (docs/console.md).
import * as api from './api.js';
import { h, clear } from './dom.js';
import { t, pickLang, setLang, getLang, translatePage } from './i18n.js';
import { renderDevices, renderDevice } from './devices.js';
import { renderDashboard } from './dashboard.js';
import { renderAudit } from './audit.js';
import { renderAdmins } from './admins.js';
import { renderInvitations } from './invitations.js';

const session = { user: '', role: '', admin: false };
const main = document.getElementById('main');

function setTitle(s) { document.title = s + ' · easgate'; }

function showHeader(on) {
  document.getElementById('top').hidden = !on;
  document.getElementById('who').textContent = on ? t('who', { user: session.user, role: session.role }) : '';
}

function signedIn(j) {
  session.user = j.user;
  session.role = j.role;
  session.admin = j.role === 'admin';
  api.setCsrf(j.csrf);
  document.getElementById('nav-admins').hidden = !session.admin;
  showHeader(true);
}

function renderSignIn(notice) {
  showHeader(false);
  api.setCsrf('');
  setTitle(t('signin.title'));
  const err = h('p', { class: 'error', id: 'signin-error', role: 'alert' }, notice || '');
  const user = h('input', { id: 'user', name: 'user', autocomplete: 'username', required: true,
    maxlength: 255 });
  const pass = h('input', { id: 'password', name: 'password', type: 'password',
    autocomplete: 'current-password', required: true, maxlength: 255 });
  const form = h('form', { class: 'signin', 'aria-describedby': 'signin-error', novalidate: true },
    h('h1', { text: t('signin.title') }),
    h('label', { for: 'user' }, t('signin.user'), user),
    h('label', { for: 'password' }, t('signin.password'), pass),
    err,
    h('button', { type: 'submit', class: 'primary', id: 'signin' }, t('signin.submit')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      const j = await api.post('/api/v1/login', { user: user.value, password: pass.value, console: true });
      signedIn(j);
      if (!location.hash || location.hash === '#/signin') location.hash = '#/dashboard';
      else route();
    } catch (e) {
      pass.value = '';
      if (e.status === 401) err.textContent = t('signin.wrong');
      else if (e.status === 429) err.textContent = t('signin.throttled', { s: (e.message.match(/\d+/) || ['?'])[0] });
      else err.textContent = t('failed', { error: e.message });
      pass.focus();
    }
  });
  clear(main).append(form);
  user.focus();
}

function markNav() {
  for (const a of document.querySelectorAll('#nav a')) {
    const href = a.getAttribute('href');
    const cur = location.hash === href || location.hash.startsWith(href + '?') ||
      (href === '#/devices' && location.hash.startsWith('#/device/'));
    if (cur) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
}

let visits = 0; // route() calls so far: the last one's page is shown

async function route() {
  if (!session.user) return;
  const hash = location.hash || '#/dashboard';
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  markNav();
  // Each visit renders into a box of its own, put in place when it is
  // drawn and only if the user has not moved on meanwhile: a late answer
  // is dropped, never drawn over the newer page. (A page's own later
  // redraws, after an action, go to its box, in place by then.)
  const visit = ++visits;
  const box = h('div', { class: 'page' });
  try {
    if (path === '/dashboard') {
      setTitle(t('nav.dashboard'));
      await renderDashboard(box);
    } else if (path === '/admins' && session.admin) {
      setTitle(t('nav.admins'));
      await renderAdmins(box, session);
    } else if (path === '/invitations') {
      setTitle(t('nav.invitations'));
      await renderInvitations(box, session);
    } else if (path === '/audit') {
      setTitle(t('nav.audit'));
      await renderAudit(box, params);
    } else if (path.startsWith('/device/')) {
      setTitle(t('nav.devices'));
      await renderDevice(box, decodeURIComponent(path.slice(8)), session);
    } else {
      setTitle(t('devices.title'));
      await renderDevices(box, params, session);
    }
  } catch (e) {
    if (e.status === 401) return; // the sign-in form is shown instead
    clear(box).append(h('p', { class: 'error', role: 'alert' }, t('failed', { error: e.message })));
  }
  if (visit === visits) clear(main).append(box);
}

async function boot() {
  pickLang();
  translatePage();
  const langSel = document.getElementById('lang');
  langSel.value = getLang();
  langSel.addEventListener('change', () => {
    setLang(langSel.value);
    translatePage();
    if (session.user) { showHeader(true); route(); } else renderSignIn();
  });
  api.onSessionExpired(() => {
    session.user = '';
    renderSignIn(t('signin.expired'));
  });
  document.getElementById('signout').addEventListener('click', async () => {
    try { await api.post('/api/v1/logout'); } catch { /* signed out either way */ }
    session.user = '';
    history.replaceState(null, '', '#/signin');
    renderSignIn();
  });
  window.addEventListener('hashchange', route);
  try {
    signedIn(await api.get('/api/v1/whoami'));
    route();
  } catch {
    session.user = '';
    renderSignIn();
  }
}

boot();
