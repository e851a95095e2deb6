// The dashboard: devices per state and per compliance verdict (each a link
// to the list filtered by it), devices waiting for approval, new devices,
// certificates and blocks over time (a chart drawn here as SVG, with its
// figures as a table for screen readers and keyboards), the proxies and
// the latest audit events.
import * as api from './api.js';
import { h, clear, fmtTime, fmtAge } from './dom.js';
import { t } from './i18n.js';

const STATES = ['allow', 'block', 'quarantine', 'wipe'];
// The list's compliance filters, in the order the cards show them.
const VERDICTS = ['compliant', 'failing', 'grace', 'unchecked'];
const SERIES = ['registered', 'certified', 'blocked'];
const SVG = 'http://www.w3.org/2000/svg';

// An SVG element: attributes only (the chart's colours and fonts are
// classes in app.css; the CSP allows no style attributes).
function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const k of kids.flat(Infinity)) if (k != null) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

// A round top for the y axis: 1, 2 or 5 times a power of ten, at least max.
function niceMax(max) {
  if (max <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= max);
}

// "12-07" for a day, "12-07 14:00" for an hour (UTC, as the server counts).
function label(at, hourly) {
  const s = new Date(at).toISOString();
  return hourly ? s.slice(5, 10) + ' ' + s.slice(11, 16) : s.slice(5, 10);
}

// Grouped bars: one group per day (or hour), one bar per series.
function chartSvg(rows, hourly, summary) {
  const W = 720, H = 220, L = 40, B = 28, T = 10, R = 8;
  const max = niceMax(Math.max(0, ...rows.flatMap((r) => SERIES.map((k) => r[k]))));
  const gw = (W - L - R) / rows.length, bw = Math.max(1, (gw - 2) / SERIES.length);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const every = hourly ? 6 : 5;
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, class: 'chart' },
    [0, max / 2, max].map((v) => [
      svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }),
      svg('text', { x: L - 4, y: y(v) + 4, class: 'tick y' }, String(v))]),
    rows.map((r, i) => svg('g', null,
      SERIES.map((k, j) => r[k] > 0 && svg('rect', { x: L + i * gw + 1 + j * bw, y: y(r[k]), width: bw,
        height: y(0) - y(r[k]), class: 'bar bar-' + k })),
      (rows.length - 1 - i) % every === 0 &&
        svg('text', { x: L + i * gw + gw / 2, y: H - 8, class: 'tick x' }, label(r.at, hourly)))));
}

function chartTable(rows, hourly) {
  return h('div', { class: 'table-wrap' }, h('table', { id: 'activity-table' },
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, t(hourly ? 'dash.hour' : 'dash.day')),
      SERIES.map((k) => h('th', { scope: 'col' }, t('dash.series.' + k))))),
    h('tbody', null, rows.map((r) => h('tr', { 'data-at': r.at },
      h('th', { scope: 'row' }, label(r.at, hourly)), SERIES.map((k) => h('td', null, String(r[k]))))))));
}

// The chart of one period ('days' or 'hours') with its caption, legend and table.
function activityFigure(activity, period) {
  const rows = activity[period], hourly = period === 'hours';
  const sum = Object.fromEntries(SERIES.map((k) => [k, rows.reduce((a, r) => a + r[k], 0)]));
  const summary = t(hourly ? 'dash.summary.hours' : 'dash.summary.days', sum);
  return h('figure', { id: 'activity', 'data-period': period },
    h('figcaption', { id: 'activity-caption' }, t(hourly ? 'dash.caption.hours' : 'dash.caption.days')),
    chartSvg(rows, hourly, summary),
    h('ul', { class: 'legend' }, SERIES.map((k) => h('li', null,
      h('span', { class: 'swatch bar-' + k, 'aria-hidden': 'true' }), t('dash.series.' + k) + ': ' + sum[k]))),
    h('details', null, h('summary', null, t('dash.asTable')), chartTable(rows, hourly)));
}

// The chart with its period switch (30 days / 48 hours): buttons that say
// which one is shown (aria-pressed).
function activitySection(activity) {
  const box = h('div', { id: 'activity-box' });
  const buttons = ['days', 'hours'].map((p) => h('button', { type: 'button', 'data-period': p,
    'aria-pressed': String(p === 'days'), on: { click: () => show(p) } }, t('dash.period.' + p)));
  function show(p) {
    for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.period === p));
    clear(box).append(activityFigure(activity, p));
  }
  show('days');
  return [h('div', { class: 'actions', role: 'group', 'aria-label': t('dash.period') }, buttons), box];
}

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
    h('h2', { text: t('dash.compliance') }),
    h('div', { class: 'cards', id: 'compliance' },
      VERDICTS.map((v) => h('a', { class: 'card', href: '#/devices?compliance=' + v, 'data-compliance': v },
        h('div', { class: 'n' }, String(stats.compliance[v] ?? 0)), h('div', null, t('dash.verdict.' + v))))),
    h('h2', { text: t('dash.activity') }),
    ...activitySection(stats.activity),
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
