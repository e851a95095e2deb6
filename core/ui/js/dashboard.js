// The dashboard: devices per state (each a link to the list filtered by
// it), devices waiting for approval, and the latest audit events.
import * as api from './api.js';
import { h, clear, fmtTime } from './dom.js';
import { t } from './i18n.js';

const STATES = ['allow', 'block', 'quarantine', 'wipe'];

export async function renderDashboard(main) {
  const [stats, audit] = await Promise.all([api.get('/api/v1/stats'), api.get('/api/v1/audit?limit=10')]);
  clear(main).append(
    h('h1', { text: t('nav.dashboard') }),
    h('h2', { text: t('dash.states') }),
    h('div', { class: 'cards', id: 'states' },
      h('div', { class: 'card', 'data-state': 'total' },
        h('div', { class: 'n' }, String(stats.devices)), h('div', null, t('dash.total'))),
      STATES.map((s) => h('a', { class: 'card', href: '#/devices?state=' + s, 'data-state': s },
        h('div', { class: 'n state-' + s }, String(stats.states[s] ?? 0)), h('div', null, t('state.' + s)))),
      h('div', { class: 'card', 'data-state': 'pending' },
        h('div', { class: 'n' }, String(stats.pending)), h('div', null, t('dash.pending')))),
    h('h2', { text: t('dash.events') }),
    auditTable(audit.audit),
    h('p', null, h('a', { href: '#/audit' }, t('dash.allEvents'))));
}

export function auditTable(rows) {
  return h('div', { class: 'table-wrap' }, h('table', { id: 'audit' },
    h('thead', null, h('tr', null, ['col.when', 'col.by', 'audit.address', 'col.action', 'col.target', 'audit.detail']
      .map((k) => h('th', { scope: 'col' }, t(k))))),
    h('tbody', null, rows.map((r) => h('tr', { 'data-id': r.id },
      h('td', null, fmtTime(r.at)), h('td', { class: 'wrap' }, r.actor), h('td', null, r.address),
      h('td', null, r.action), h('td', { class: 'wrap' }, r.target), h('td', { class: 'wrap' }, r.detail))))));
}
