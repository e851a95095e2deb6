// The language: the one chosen in the console (kept in localStorage), else
// the browser's, else English. t(key, {name: value}) fills {name}s.
import en from './i18n/en.js';
import ja from './i18n/ja.js';

const catalogues = { en, ja };
let lang = 'en';

export function pickLang() {
  let want = '';
  try { want = localStorage.getItem('easgate.lang') || ''; } catch { want = ''; }
  if (!catalogues[want]) {
    want = (navigator.languages || [navigator.language || 'en'])
      .map((l) => String(l).slice(0, 2).toLowerCase())
      .find((l) => catalogues[l]) || 'en';
  }
  setLang(want, false);
  return lang;
}

export function setLang(l, keep = true) {
  lang = catalogues[l] ? l : 'en';
  document.documentElement.lang = lang;
  if (keep) try { localStorage.setItem('easgate.lang', lang); } catch { /* private mode */ }
}

export function getLang() { return lang; }

export function t(key, vars) {
  let s = catalogues[lang][key] ?? en[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) s = s.split('{' + k + '}').join(String(v));
  return s;
}

// The static page's labelled elements (data-t="key").
export function translatePage(root = document) {
  for (const e of root.querySelectorAll('[data-t]')) e.textContent = t(e.dataset.t);
}
