// Invitations (the enrollment role's, through /api/v1/invitations when it
// runs in the core's process; docs/console.md). Admins create them, one or
// many at once from a pasted list of addresses or CSV "email,user" lines,
// and see each new link and its QR code once, right here: only the key's
// hash is stored, so neither the list nor a reload can show them again.
// The list gives every invitation's state; admins may withdraw an open one
// after a confirmation naming the address. Viewers see the list only.
import * as api from './api.js';
import { h, clear, fmtTime, confirmDialog } from './dom.js';
import { t } from './i18n.js';

const LINES_MAX = 200; // one paste; each line is one request

// A field, trimmed, with the quotes a spreadsheet's CSV puts around it removed.
function unquote(s) {
  const v = s.trim();
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1).replace(/""/g, '"').trim() : v;
}

// The pasted text as rows {line, text, email, user}, and the lines that
// are not one address with at most a user name ({line, text, error}).
// Blank lines, "#" comments and a first "email,user" header are skipped.
// Line numbers are the textarea's, counted from 1.
export function parseLines(text) {
  const rows = [];
  const errors = [];
  let first = true;
  String(text).split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const wasFirst = first;
    first = false;
    const f = line.split(/[,;\t]/).map(unquote);
    if (wasFirst && /^e-?mail$/i.test(f[0]) && (f.length === 1 || /^user/i.test(f[1] || ''))) return;
    if (f.length > 2) errors.push({ line: i + 1, text: line, error: t('inv.fields') });
    else if (!f[0]) errors.push({ line: i + 1, text: line, error: t('inv.noEmail') });
    else rows.push({ line: i + 1, text: line, email: f[0], user: f[1] || '' });
  });
  return { rows, errors };
}

function confirmWithdraw(inv) {
  return confirmDialog(t('inv.withdraw.title', { email: inv.email }),
    t('inv.withdraw.text', { email: inv.email, id: inv.id }), t('inv.withdraw'), t('cancel'));
}

function stateCell(st) {
  return h('span', { class: 'state inv-' + st }, t('inv.state.' + st));
}

function listTable(list, session, onWithdraw) {
  return h('table', { id: 'invitations' },
    h('caption', { class: 'skip' }, t('inv.rows', { n: list.length })),
    h('thead', null, h('tr', null, ['inv.id', 'inv.email', 'inv.user', 'inv.uses', 'inv.expires',
      'inv.created', 'inv.state', session.admin ? 'device.actions' : null].filter(Boolean)
      .map((k) => h('th', { scope: 'col' }, t(k))))),
    h('tbody', null, list.map((v) => h('tr', { 'data-id': v.id, 'data-email': v.email },
      h('td', null, String(v.id)),
      h('td', { class: 'wrap' }, v.email),
      h('td', { class: 'wrap' }, v.user),
      h('td', null, v.uses + ' / ' + v.max_uses),
      h('td', null, v.expires === 'never' ? t('inv.never') : fmtTime(Date.parse(v.expires))),
      h('td', null, fmtTime(Date.parse(v.created))),
      h('td', { 'data-state': v.state }, stateCell(v.state)),
      session.admin ? h('td', null, v.state === 'open' ? h('button', { type: 'button', class: 'danger',
        'data-withdraw': v.id, on: { click: () => onWithdraw(v) } }, t('inv.withdraw')) : '') : null))));
}

// One new invitation, as the API answered it: the link and its QR code.
function createdCard(j) {
  return h('div', { class: 'inv-new', 'data-email': j.email },
    h('p', null, h('strong', null, j.email), j.user && j.user !== j.email ? ' (' + j.user + ')' : '',
      ' — ', t('inv.uses.n', { n: j.max_uses }), ', ',
      j.expires === 'never' ? t('inv.never') : t('inv.until', { when: fmtTime(Date.parse(j.expires)) })),
    j.url
      ? [h('p', null, h('code', { class: 'inv-link' }, j.url)),
        j.qr_png ? h('img', { class: 'qr', src: 'data:image/png;base64,' + j.qr_png,
          alt: t('inv.qr', { email: j.email }) }) : null]
      : h('p', null, t('inv.keyOnly'), ' ', h('code', { class: 'inv-key' }, j.key)));
}

export async function renderInvitations(main, session) {
  const status = h('p', { id: 'inv-status', role: 'status' });
  const listWrap = h('div', { class: 'table-wrap', id: 'inv-list' });

  async function refresh() {
    const j = await api.get('/api/v1/invitations');
    clear(listWrap).append(j.invitations.length ? listTable(j.invitations, session, withdraw)
      : h('p', { id: 'inv-none' }, t('inv.none')));
  }

  async function withdraw(v) {
    if (!(await confirmWithdraw(v))) return;
    try {
      await api.del('/api/v1/invitations/' + encodeURIComponent(v.id));
      status.textContent = t('inv.withdrawn', { email: v.email });
    } catch (e) {
      status.textContent = t('failed', { error: e.message });
    }
    await refresh();
  }

  try {
    await refresh();
  } catch (e) {
    if (e.status !== 404) throw e;
    clear(main).append(h('h1', { text: t('nav.invitations') }),
      h('p', { class: 'notice', id: 'inv-unavailable' }, t('inv.unavailable')),
      h('p', { class: 'error' }, e.message));
    return;
  }

  const parts = [h('h1', { text: t('nav.invitations') })];
  if (session.admin) parts.push(createForm(status, refresh));
  else parts.push(h('p', { class: 'notice', id: 'viewer-note' }, t('inv.viewer')));
  parts.push(status, h('h2', { text: t('inv.list') }), listWrap);
  clear(main).append(...parts);
}

function createForm(status, refresh) {
  const fieldErr = (id) => h('p', { class: 'field-error', id, role: 'alert' });
  const listErr = fieldErr('inv-list-error');
  const usesErr = fieldErr('inv-uses-error');
  const expErr = fieldErr('inv-expires-error');
  const area = h('textarea', { id: 'inv-addresses', rows: 4, cols: 50, required: true, spellcheck: 'false',
    'aria-describedby': 'inv-list-error inv-help', placeholder: 'alice@example.com\nbob@example.com,bob' });
  // Text, not type=number: a number input hides what it cannot read (its
  // value is then ""), and the server is to judge what was typed.
  const uses = h('input', { id: 'inv-uses', inputmode: 'numeric', maxlength: 12, value: 1,
    autocomplete: 'off', 'aria-describedby': 'inv-uses-error' });
  const expires = h('input', { id: 'inv-expires', maxlength: 32, autocomplete: 'off',
    placeholder: t('inv.expires.hint'), 'aria-describedby': 'inv-expires-error' });
  const errors = h('ul', { id: 'inv-errors', class: 'error' });
  const created = h('div', { id: 'inv-created' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'inv-create' }, t('inv.create'));
  const form = h('form', { id: 'inv-form', class: 'inv-form', novalidate: true },
    h('label', { for: 'inv-addresses' }, t('inv.addresses'), area),
    h('p', { class: 'hint', id: 'inv-help' }, t('inv.help', { n: LINES_MAX })),
    listErr,
    h('div', { class: 'filters' },
      h('label', { for: 'inv-uses' }, t('inv.maxUses'), uses), usesErr,
      h('label', { for: 'inv-expires' }, t('inv.expiresIn'), expires), expErr,
      submit),
    errors, created);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const e of [listErr, usesErr, expErr, status]) e.textContent = '';
    clear(errors);
    clear(created);
    const { rows, errors: bad } = parseLines(area.value);
    if (!rows.length && !bad.length) { listErr.textContent = t('inv.empty'); area.focus(); return; }
    if (rows.length + bad.length > LINES_MAX) { listErr.textContent = t('inv.tooMany', { n: LINES_MAX }); return; }
    const u = uses.value.trim();
    const base = {};
    // Sent as typed (a number when it reads as one): the server's checks are the ones that count.
    if (u !== '') base.max_uses = /^-?\d+$/.test(u) ? Number(u) : u;
    if (expires.value.trim()) base.expires = expires.value.trim();
    submit.disabled = true;
    const done = [];
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      try {
        const body = { ...base, email: r.email };
        if (r.user) body.user = r.user;
        done.push(await api.post('/api/v1/invitations', body));
      } catch (e) {
        if (e.status === 401) return; // signed out: the sign-in page is shown
        // A setting's error is the form's, not a line's: said once, next to
        // the field, and the lines not sent stay in the box.
        const setting = e.status === 400 && (/max_uses/.test(e.message) ? usesErr
          : /expires|expiry/.test(e.message) ? expErr : null);
        if (setting) {
          setting.textContent = e.message;
          bad.push(...rows.slice(i).map((x) => ({ ...x, error: '' })));
          break;
        }
        bad.push({ line: r.line, text: r.text, error: e.message });
      }
    }
    submit.disabled = false;
    bad.sort((a, b) => a.line - b.line);
    for (const b of bad.filter((x) => x.error)) {
      errors.append(h('li', { 'data-line': b.line }, t('inv.lineError', { line: b.line, text: b.text, error: b.error })));
    }
    // What is left to fix stays in the box; what was created is shown once, below.
    area.value = bad.map((b) => b.text).join('\n');
    if (done.length) {
      created.append(h('h2', { text: t('inv.new', { n: done.length }) }),
        h('p', { class: 'notice' }, t('inv.once')), ...done.map(createdCard));
    }
    status.textContent = t('inv.result', { n: done.length, m: bad.length });
    if (bad.length) area.focus();
    await refresh();
  });
  return form;
}
