// The audit log: newest first, paged by the server (?before=), filtered by
// target (a DeviceId, an account, "token:7"), and exported as CSV: the
// rows of the filter, fetched page by page and saved by the browser.
import * as api from './api.js';
import { h, clear } from './dom.js';
import { t } from './i18n.js';
import { auditTable } from './dashboard.js';

const PAGE = 100;
const EXPORT_MAX = 100000;

let trail = { key: '', cursors: [] };

function hashOf(p) {
  const s = p.toString();
  return '#/audit' + (s ? '?' + s : '');
}

// RFC 4180, and a leading = + - @ made inert so that a spreadsheet never
// takes a cell for a formula (an actor or a detail is anyone's text).
function csvCell(v) {
  let s = v == null ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

export function toCsv(rows) {
  const cols = ['id', 'at', 'actor', 'address', 'action', 'target', 'detail'];
  const lines = [cols.join(',')];
  for (const r of rows) lines.push(cols.map((c) => csvCell(c === 'at' ? new Date(r.at).toISOString() : r[c])).join(','));
  return lines.join('\r\n') + '\r\n';
}

async function exportCsv(target, status) {
  const rows = [];
  let before = '';
  do {
    const j = await api.get('/api/v1/audit' + api.qs({ limit: 1000, target, before }));
    rows.push(...j.audit);
    before = j.next == null ? '' : String(j.next);
    status.textContent = t('audit.exporting', { n: rows.length });
  } while (before && rows.length < EXPORT_MAX);
  const url = URL.createObjectURL(new Blob([toCsv(rows)], { type: 'text/csv' }));
  const a = h('a', { href: url, download: 'easgate-audit.csv', hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  status.textContent = t('audit.exported', { n: rows.length });
}

export async function renderAudit(main, params) {
  const target = params.get('target') || '';
  if (trail.key !== target) trail = { key: target, cursors: [] };
  const before = params.get('before') || '';
  const at = trail.cursors.indexOf(before);
  if (!before) trail.cursors = [];
  else if (at >= 0) trail.cursors = trail.cursors.slice(0, at + 1);
  else trail.cursors.push(before);

  const j = await api.get('/api/v1/audit' + api.qs({ limit: PAGE, target, before }));
  const status = h('p', { id: 'audit-status', role: 'status' });
  const input = h('input', { id: 'f-target', name: 'target', value: target, maxlength: 255, autocomplete: 'off' });
  const form = h('form', { class: 'filters', role: 'search' },
    h('label', { for: 'f-target' }, t('audit.target'), input),
    h('button', { type: 'submit', class: 'primary', id: 'apply' }, t('devices.apply')),
    h('button', { type: 'button', id: 'export', on: { click: () => exportCsv(target, status).catch((e) => {
      status.textContent = t('failed', { error: e.message });
    }) } }, t('audit.export')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (input.value.trim()) p.set('target', input.value.trim());
    location.hash = hashOf(p);
  });
  const page = trail.cursors.length + 1;
  const prev = h('button', { type: 'button', id: 'prev', disabled: page === 1, on: { click: () => {
    const p = new URLSearchParams(params);
    const back = trail.cursors[trail.cursors.length - 2];
    if (back) p.set('before', back); else p.delete('before');
    location.hash = hashOf(p);
  } } }, t('devices.prev'));
  const next = h('button', { type: 'button', id: 'next', disabled: j.next == null, on: { click: () => {
    const p = new URLSearchParams(params);
    p.set('before', String(j.next));
    location.hash = hashOf(p);
  } } }, t('devices.next'));
  clear(main).append(h('h1', { text: t('nav.audit') }), form, status,
    j.audit.length ? auditTable(j.audit) : h('p', { id: 'none' }, t('audit.none')),
    h('div', { class: 'pager' }, prev, h('span', { 'aria-live': 'polite' }, t('devices.page', { n: page })), next));
}
