// Devices: the table over GET /api/v1/devices (the server filters and
// pages: the browser never holds more than one page, whatever the size of
// the registry) and one device's page with its facts, history, the explain
// view and the admin's actions, each behind a confirmation naming the
// device and its user.
import * as api from './api.js';
import { h, clear, fmtTime, fmtAge, confirmDialog } from './dom.js';
import { t } from './i18n.js';
import { auditTable } from './dashboard.js';

const PAGE = 50;
const STATES = ['allow', 'block', 'quarantine', 'wipe'];
const COMPLIANCE = ['compliant', 'failing', 'grace', 'unchecked'];
const SEEN = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };
const FILTERS = ['q', 'user', 'state', 'type', 'os', 'managed', 'compliance', 'seen'];
// The columns the server sorts the whole registry by (GET /api/v1/devices?sort=):
// the table's column, the API's sort key.
const SORTS = { device_id: 'device_id', user: 'user', state: 'state', device_type: 'type', os: 'os',
  last_seen: 'last_seen' };

// The cursors of the pages before this one, per filter set: "Previous"
// goes back without the server keeping anything.
let trail = { key: '', cursors: [] };

function select(id, label, options, value) {
  const s = h('select', { id, name: id },
    h('option', { value: '' }, t('devices.any')),
    options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
  return h('label', { for: id }, label, s);
}

function input(id, label, value, type) {
  return h('label', { for: id }, label,
    h('input', { id, name: id, value: value || '', maxlength: id === 'f-q' ? 128 : 255,
      autocomplete: 'off', type: type || 'text' }));
}

function apiQuery(params) {
  const q = { limit: PAGE };
  for (const k of ['q', 'user', 'state', 'type', 'os', 'managed', 'compliance', 'sort', 'order']) {
    q[k] = params.get(k) || '';
  }
  const seen = params.get('seen');
  if (seen && SEEN[seen]) q.seen_since = Date.now() - SEEN[seen];
  if (seen === 'older30d') q.seen_before = Date.now() - SEEN['30d'];
  if (params.get('after')) q.after = params.get('after');
  return q;
}

function hashOf(params) {
  const s = params.toString();
  return '#/devices' + (s ? '?' + s : '');
}

function stateCell(state) {
  return h('span', { class: 'state state-' + state }, t('state.' + state));
}

// One page of PAGE devices. A search or filters that are rare together
// may come back short with a cursor (the server bounds the rows it walks
// per request: docs/core.md); a few more requests fill the page.
async function fetchPage(q) {
  const devices = [];
  let next = q.after || '';
  for (let i = 0; i < 5; i++) {
    const j = await api.get('/api/v1/devices' + api.qs({ ...q, after: next, limit: PAGE - devices.length }));
    devices.push(...j.devices);
    next = j.next;
    if (!next || devices.length >= PAGE) break;
  }
  return { devices, next };
}

export async function renderDevices(main, params, session) {
  const key = FILTERS.concat('sort', 'order').map((k) => params.get(k) || '').join('\u0001');
  if (trail.key !== key) trail = { key, cursors: [] };
  const after = params.get('after') || '';
  const at = trail.cursors.indexOf(after);
  if (!after) trail.cursors = [];
  else if (at >= 0) trail.cursors = trail.cursors.slice(0, at + 1);
  else trail.cursors.push(after);

  const j = await fetchPage(apiQuery(params));
  const form = h('form', { class: 'filters', role: 'search', id: 'filters' },
    input('f-q', t('devices.q'), params.get('q'), 'search'),
    input('f-user', t('devices.search'), params.get('user')),
    select('f-state', t('devices.state'), STATES.map((s) => [s, t('state.' + s)]), params.get('state')),
    input('f-type', t('devices.type'), params.get('type')),
    input('f-os', t('devices.os'), params.get('os')),
    select('f-managed', t('devices.managed'), [['yes', t('devices.yes')], ['no', t('devices.no')]], params.get('managed')),
    select('f-compliance', t('devices.compliance'), COMPLIANCE.map((c) => [c, t('compliance.' + c)]), params.get('compliance')),
    select('f-seen', t('devices.seen'), Object.keys(SEEN).concat('older30d').map((s) => [s, t('seen.' + s)]), params.get('seen')),
    h('button', { type: 'submit', class: 'primary', id: 'apply' }, t('devices.apply')),
    h('button', { type: 'button', id: 'clear', on: { click: () => { location.hash = '#/devices'; } } }, t('devices.reset')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const k of FILTERS) {
      const v = form.querySelector('#f-' + k).value.trim();
      if (v) p.set(k, v);
    }
    for (const k of ['sort', 'order']) if (params.get(k)) p.set(k, params.get(k));
    location.hash = hashOf(p);
  });

  const cols = [['device_id', t('devices.id')], ['user', t('devices.user')], ['state', t('devices.state')],
    ['device_type', t('devices.type')], ['os', t('devices.os')], ['model', t('devices.model')],
    ['last_seen', t('devices.seen')]];
  // A header sorts the whole registry on the server: first ascending,
  // again descending; the pages start over.
  const sorted = params.get('sort') || 'device_id';
  const desc = params.get('order') === 'desc';
  const header = ([k, label]) => {
    if (!SORTS[k]) return h('th', { scope: 'col' }, label);
    const on = SORTS[k] === sorted;
    return h('th', { scope: 'col', 'aria-sort': on ? (desc ? 'descending' : 'ascending') : false },
      h('button', { type: 'button', 'data-col': k, on: { click: () => {
        const p = new URLSearchParams(params);
        p.delete('after');
        p.set('sort', SORTS[k]);
        if (on && !desc) p.set('order', 'desc'); else p.delete('order');
        if (SORTS[k] === 'device_id' && !p.get('order')) p.delete('sort');
        location.hash = hashOf(p);
      } } }, label, on ? (desc ? ' ▼' : ' ▲') : ''));
  };
  const table = h('table', { id: 'devices' },
    h('caption', { class: 'skip' }, t('devices.rows', { n: j.devices.length }), ' ',
      t('devices.sorted', { col: (cols.find(([k]) => SORTS[k] === sorted) || cols[0])[1],
        dir: t(desc ? 'devices.desc' : 'devices.asc') })),
    h('thead', null, h('tr', null, cols.map(header))),
    h('tbody', null, j.devices.map((d) => h('tr', { 'data-id': d.device_id },
      h('td', null, h('a', { href: '#/device/' + encodeURIComponent(d.device_id) }, d.device_id)),
      h('td', { class: 'wrap' }, d.user),
      h('td', null, stateCell(d.state)),
      h('td', null, d.device_type),
      h('td', null, [d.os, d.os_version].filter(Boolean).join(' ')),
      h('td', { class: 'wrap' }, d.model),
      h('td', { title: fmtTime(d.last_seen) }, fmtAge(d.last_seen))))));

  const page = trail.cursors.length + 1;
  const prev = h('button', { type: 'button', id: 'prev', disabled: page === 1, on: { click: () => {
    const p = new URLSearchParams(params);
    const back = trail.cursors[trail.cursors.length - 2];
    if (back) p.set('after', back); else p.delete('after');
    location.hash = hashOf(p);
  } } }, t('devices.prev'));
  const next = h('button', { type: 'button', id: 'next', disabled: !j.next, on: { click: () => {
    const p = new URLSearchParams(params);
    p.set('after', j.next);
    location.hash = hashOf(p);
  } } }, t('devices.next'));

  clear(main).append(
    h('h1', { text: t('devices.title') }),
    form,
    j.devices.length ? h('div', { class: 'table-wrap' }, table) : h('p', { id: 'none' }, t('devices.none')),
    h('div', { class: 'pager' }, prev, h('span', { 'aria-live': 'polite' }, t('devices.page', { n: page })), next));
}

// ---- one device -----------------------------------------------------------

const FACTS = ['device_id', 'user', 'state', 'reason', 'override', 'managed', 'cert_enrollment', 'device_type', 'model',
  'friendly_name', 'os', 'os_version', 'eas_os', 'eas_os_version', 'eas_version', 'imei',
  'phone_number', 'user_agent', 'last_client', 'passcode', 'encrypted', 'jailbroken',
  'agent_version', 'first_seen', 'last_seen', 'last_checkin', 'updated', 'non_compliant_since',
  'provisioned', 'policy_key', 'wipe_kind', 'wipe_acked', 'autoblock_until', 'autoblock_reason',
  'version'];
const TIMES = new Set(['first_seen', 'last_seen', 'last_checkin', 'updated', 'non_compliant_since',
  'provisioned', 'wipe_acked', 'autoblock_until']);

function factValue(k, v) {
  if (TIMES.has(k)) return v ? fmtTime(v) + ' (' + fmtAge(v) + ')' : '—';
  if (v === null || v === undefined || v === '') return '—';
  return String(v);
}

// The action buttons an admin sees; name is the API's action.
function actionsFor(d) {
  const list = [];
  if (d.state === 'quarantine') list.push(['approve', 'allow', {}]);
  else list.push(['allow', 'allow', {}]);
  list.push(['block', 'block', {}], ['quarantine', 'quarantine', {}], ['reset', 'reset', {}],
    ['reprovision', 'reprovision', {}], ['wipe', 'wipe', { kind: 'full' }],
    ['wipe_account', 'wipe', { kind: 'account' }], ['delete', 'delete', null]);
  return list;
}

function confirmAction(label, d, danger, ask) {
  const text = ask || t('confirm.text', { action: label, id: d.device_id, user: d.user || '—' });
  return confirmDialog(t('confirm.title', { action: label, id: d.device_id }),
    danger ? text + ' ' + t('confirm.wipe') : text, label, t('cancel'));
}

// The device's certificates (the enrollment role's, GET .../certs) and,
// for an admin, "Revoke certificate" on each one still valid.
function certsTable(d, certs, session, main, status) {
  if (!certs) return h('p', null, t('cert.unavailable'));
  if (!certs.length) return h('p', { id: 'no-certs' }, t('cert.none'));
  const label = t('act.revoke_cert');
  const statusOf = (c) => (c.status === 'revoked'
    ? t('cert.revoked', { when: fmtTime(c.revoked), reason: c.revoke_reason || '—' })
    : t('cert.' + c.status));
  const revoke = (c) => h('button', { type: 'button', class: 'danger', 'data-serial': c.serial, on: { click: async () => {
    const ask = t('confirm.cert', { serial: c.serial, id: d.device_id, user: d.user || c.user || '—' });
    if (!(await confirmAction(label, d, false, ask))) return;
    try {
      const r = await api.post('/api/v1/devices/' + encodeURIComponent(d.device_id) + '/certs/' +
        encodeURIComponent(c.serial) + '/revoke', { reason: 'revoked in the console' });
      const said = t('cert.done', { serial: c.serial, id: d.device_id }) +
        (r.crl === 'rewriting' ? '' : ' ' + t('cert.crl.elsewhere'));
      await renderDevice(main, d.device_id, session, said);
    } catch (e) {
      status.textContent = t('failed', { error: e.message });
    }
  } } }, label);
  return h('div', { class: 'table-wrap' }, h('table', { id: 'certs' },
    h('thead', null, h('tr', null, ['cert.serial', 'cert.subject', 'cert.issued', 'cert.expires',
      'cert.bound', 'cert.enrollment', 'cert.status'].map((k) => h('th', { scope: 'col' }, t(k))),
    session.admin ? h('th', { scope: 'col' }, t('device.actions')) : null)),
    h('tbody', null, certs.map((c) => h('tr', { 'data-serial': c.serial },
      h('td', { class: 'wrap' }, c.serial),
      h('td', { class: 'wrap' }, c.subject || '—'),
      h('td', null, fmtTime(c.issued)),
      h('td', null, fmtTime(c.not_after)),
      h('td', null, c.bound ? c.device_id + ' (' + fmtTime(c.bound) + ')' : c.enrollment ? t('cert.unbound') : '—'),
      h('td', null, c.enrollment || '—'),
      h('td', { 'data-status': c.status }, statusOf(c)),
      session.admin ? h('td', null, c.status === 'revoked' ? '' : revoke(c)) : null)))));
}

export async function renderDevice(main, id, session, notice) {
  let j;
  try {
    j = await api.get('/api/v1/devices/' + encodeURIComponent(id));
  } catch (e) {
    if (e.status === 404 || e.status === 400) {
      clear(main).append(h('p', { class: 'error', role: 'alert' }, t('device.notfound')),
        h('a', { href: '#/devices' }, t('device.back')));
      return;
    }
    throw e;
  }
  const d = j.device;
  let explain = null;
  try { explain = await api.get('/api/v1/devices/' + encodeURIComponent(id) + '/explain'); } catch { explain = null; }
  const audit = await api.get('/api/v1/audit' + api.qs({ target: d.device_id, limit: 20 }));
  let certs = null;
  try { certs = (await api.get('/api/v1/devices/' + encodeURIComponent(id) + '/certs')).certificates; } catch { certs = null; }

  const status = h('p', { id: 'status', role: 'status' }, notice || '');
  const actions = h('div', { class: 'actions', id: 'actions' });
  if (session.admin) {
    for (const [key, act, body] of actionsFor(d)) {
      const label = t('act.' + key);
      const danger = act === 'wipe' || act === 'delete';
      actions.append(h('button', { type: 'button', 'data-action': key, class: danger ? 'danger' : false,
        on: { click: async () => {
          if (!(await confirmAction(label, d, act === 'wipe'))) return;
          try {
            if (act === 'delete') {
              await api.del('/api/v1/devices/' + encodeURIComponent(d.device_id));
              location.hash = '#/devices';
              return;
            }
            await api.post('/api/v1/devices/' + encodeURIComponent(d.device_id) + '/' + act, body);
            await renderDevice(main, id, session, t('done', { action: label, id: d.device_id }));
          } catch (e) {
            status.textContent = t('failed', { error: e.message });
          }
        } } }, label));
    }
  }

  clear(main).append(
    h('p', null, h('a', { href: '#/devices' }, t('device.back'))),
    h('h1', { text: t('device.title', { id: d.device_id }) }),
    h('p', null, stateCell(d.state), ' ', d.reason ? '— ' + d.reason : ''),
    status,
    h('h2', { text: t('device.actions') }),
    session.admin ? actions : h('p', { class: 'notice', id: 'viewer-note' }, t('device.viewer')),
    h('h2', { text: t('device.facts') }),
    h('dl', { class: 'facts', id: 'facts' }, FACTS.filter((k) => k in d).map((k) => [
      h('dt', null, k), h('dd', { 'data-fact': k }, factValue(k, d[k]))])),
    h('h2', { text: t('device.certs') }),
    certsTable(d, certs, session, main, status),
    h('h2', { text: t('device.history') }),
    h('div', { class: 'table-wrap' }, h('table', { id: 'history' },
      h('thead', null, h('tr', null, ['col.when', 'col.action', 'col.by', 'col.note'].map((k) =>
        h('th', { scope: 'col' }, t(k))))),
      h('tbody', null, (j.history || []).map((r) => h('tr', null,
        h('td', null, fmtTime(r.at)), h('td', null, r.action), h('td', null, r.actor),
        h('td', { class: 'wrap' }, r.note)))))),
    h('h2', { text: t('device.audit') }),
    audit.audit.length ? auditTable(audit.audit) : h('p', null, t('audit.none')),
    h('p', null, h('a', { href: '#/audit?target=' + encodeURIComponent(d.device_id) }, t('device.allAudit'))),
    h('h2', { text: t('device.explain') }),
    h('pre', { class: 'explain', id: 'explain' }, explain ? JSON.stringify(explain, null, 2) : t('device.explain.none')));
}
