// The dashboard: devices per state (each a link to the list filtered by
// it), devices waiting for approval, and the latest audit events.
import * as api from './api.js';
import { h, clear, fmtTime, fmtAge } from './dom.js';
import { t } from './i18n.js';

const STATES = ['allow', 'block', 'quarantine', 'wipe'];

// One row per proxy process: its workers' presence keys summed.
function proxyRows(list) {
  const by = new Map();
  for (const p of list) {
    const k = p.host + '/' + p.pid;
    const r = by.get(k) || { host: p.host, pid: p.pid, version: p.version, workers: 0, held: 0, conns: 0,
      beat: 0, health: new Set() };
    r.workers += 1;
    r.held += Number(p.held_pings) || 0;
    r.conns += Number(p.connections) || 0;
    r.beat = Math.max(r.beat, Number(p.beat) || 0);
    r.health.add(String(p.health));
    by.set(k, r);
  }
  return [...by.values()].sort((a, b) => (a.host + a.pid < b.host + b.pid ? -1 : 1));
}

function proxyTable(list) {
  const rows = proxyRows(list);
  if (!rows.length) return h('p', { id: 'no-proxies' }, t('dash.noProxies'));
  return h('div', { class: 'table-wrap' }, h('table', { id: 'proxies' },
    h('thead', null, h('tr', null, ['proxy.host', 'proxy.version', 'proxy.health', 'proxy.workers', 'proxy.held',
      'proxy.conns', 'proxy.beat'].map((k) => h('th', { scope: 'col' }, t(k))))),
    h('tbody', null, rows.map((r) => h('tr', { 'data-proxy': r.host + '/' + r.pid },
      h('td', null, r.host + ' (' + r.pid + ')'), h('td', null, r.version),
      h('td', { class: r.health.size === 1 && r.health.has('ready') ? 'state state-allow' : 'state state-quarantine' },
        [...r.health].join(', ')),
      h('td', null, String(r.workers)), h('td', null, String(r.held)), h('td', null, String(r.conns)),
      h('td', { title: fmtTime(r.beat) }, fmtAge(r.beat)))))));
}

export async function renderDashboard(main) {
  const [stats, audit] = await Promise.all([api.get('/api/v1/stats'), api.get('/api/v1/audit?limit=10')]);
  let proxies;
  try {
    proxies = proxyTable((await api.get('/api/v1/proxies')).proxies);
  } catch (e) {
    if (e.status === 401) throw e;
    proxies = h('p', { class: 'error', id: 'proxies-error' }, t('failed', { error: e.message }));
  }
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
    h('h2', { text: t('dash.proxies') }),
    proxies,
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
