// Admins and API tokens (admins only; the API refuses a viewer anyway):
// the accounts with create, disable/enable and delete; the API tokens
// with mint (the token shown once) and revoke. Every form's error is
// shown next to it, as the API said it.
import * as api from './api.js';
import { h, clear, fmtTime, confirmDialog } from './dom.js';
import { t } from './i18n.js';

function confirmed(text) {
  return confirmDialog(text, text, t('ok'), t('cancel'));
}

function field(id, label, attrs = {}) {
  return h('label', { for: id }, label, h('input', { id, name: id, maxlength: 255, autocomplete: 'off', ...attrs }));
}

export async function renderAdmins(main, session) {
  const [admins, tokens] = await Promise.all([api.get('/api/v1/admins'), api.get('/api/v1/tokens')]);
  const rerender = () => renderAdmins(main, session);
  const err = (id) => h('p', { class: 'field-error', id, role: 'alert' });

  const accErr = err('account-error');
  const accForm = h('form', { class: 'filters', id: 'account-form', 'aria-describedby': 'account-error' },
    field('a-name', t('admins.name'), { required: true }),
    h('label', { for: 'a-role' }, t('admins.role'), h('select', { id: 'a-role' },
      h('option', { value: 'viewer' }, 'viewer'), h('option', { value: 'admin' }, 'admin'))),
    field('a-password', t('signin.password'), { type: 'password', autocomplete: 'new-password', required: true }),
    h('button', { type: 'submit', class: 'primary', id: 'a-create' }, t('admins.create')), accErr);
  accForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api.post('/api/v1/admins', { name: accForm.querySelector('#a-name').value,
        role: accForm.querySelector('#a-role').value, password: accForm.querySelector('#a-password').value });
      rerender();
    } catch (e) { accErr.textContent = e.message; }
  });

  const tokErr = err('token-error');
  const shown = h('p', { id: 'token-shown', role: 'status' });
  const tokForm = h('form', { class: 'filters', id: 'token-form', 'aria-describedby': 'token-error' },
    field('t-name', t('tokens.label')),
    h('label', { for: 't-role' }, t('admins.role'), h('select', { id: 't-role' },
      ['viewer', 'admin', 'device'].map((r) => h('option', { value: r }, r)))),
    h('button', { type: 'submit', class: 'primary', id: 't-mint' }, t('tokens.mint')), tokErr);
  tokForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const j = await api.post('/api/v1/tokens', { name: tokForm.querySelector('#t-name').value,
        role: tokForm.querySelector('#t-role').value });
      await rerender();
      const s = document.getElementById('token-shown');
      clear(s).append(t('tokens.once'), ' ', h('code', { id: 'new-token' }, j.token));
    } catch (e) { tokErr.textContent = e.message; }
  });

  const act = (label, fn, danger) => h('button', { type: 'button', class: danger ? 'danger' : false,
    on: { click: async () => { if (await confirmed(label)) { try { await fn(); } finally { rerender(); } } } } }, label);

  clear(main).append(
    h('h1', { text: t('nav.admins') }),
    h('h2', { text: t('admins.accounts') }),
    h('div', { class: 'table-wrap' }, h('table', { id: 'admins' },
      h('thead', null, h('tr', null, ['admins.name', 'admins.role', 'admins.created', 'admins.state', 'device.actions']
        .map((k) => h('th', { scope: 'col' }, t(k))))),
      h('tbody', null, admins.admins.map((a) => h('tr', { 'data-name': a.name },
        h('td', null, a.name), h('td', null, a.role), h('td', null, fmtTime(a.created)),
        h('td', null, a.disabled ? t('admins.disabled') : t('admins.enabled')),
        h('td', null, a.name === session.user ? '' : [
          act(t(a.disabled ? 'admins.enable' : 'admins.disable') + ': ' + a.name,
            () => api.post('/api/v1/admins/' + encodeURIComponent(a.name) + (a.disabled ? '/enable' : '/disable'))),
          ' ',
          act(t('act.delete') + ': ' + a.name, () => api.del('/api/v1/admins/' + encodeURIComponent(a.name)), true)])))))),
    accForm,
    h('h2', { text: t('tokens.title') }),
    shown,
    h('div', { class: 'table-wrap' }, h('table', { id: 'tokens' },
      h('thead', null, h('tr', null, ['tokens.id', 'tokens.account', 'admins.role', 'tokens.label', 'admins.created',
        'tokens.used', 'admins.state', 'device.actions'].map((k) => h('th', { scope: 'col' }, t(k))))),
      h('tbody', null, tokens.tokens.map((k) => h('tr', { 'data-id': k.id },
        h('td', null, String(k.id)), h('td', null, k.account), h('td', null, k.role), h('td', { class: 'wrap' }, k.name),
        h('td', null, fmtTime(k.created)), h('td', null, fmtTime(k.last_used)),
        h('td', null, k.revoked ? t('tokens.revoked') : t('admins.enabled')),
        h('td', null, k.revoked ? '' : act(t('tokens.revoke') + ': ' + k.id,
          () => api.del('/api/v1/tokens/' + k.id), true))))))),
    tokForm);
}
