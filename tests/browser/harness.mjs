// easgate's browser test harness: Debian's chromium driven headless by
// playwright-core (tests/browser/package.json; no browser download), and a
// page wrapper that fails the test on what a user would not see but a
// broken page shows: a Content-Security-Policy violation, a console error,
// an uncaught exception, a request that failed or answered >= 400.
//
// A test that provokes an error on purpose (a wrong password is a 401)
// says so first: page.expectStatus(/\/api\/v1\/login$/, 401). Anything
// not expected is collected, and page.check() (or closing the browser with
// done()) throws with the list.
//
// Use (ESM):
//   import { launch } from './harness.mjs';
//   const b = await launch();                 // skips (exit 77) without chromium
//   const page = await b.page({ baseURL });   // a fresh context each time
//   ...
//   await b.done();                           // throws if any page saw a problem
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

export const CHROMIUM = process.env.EG_CHROMIUM || '/usr/bin/chromium';
export const SKIP = 77;

let pw;
try {
  pw = await import('playwright-core');
} catch {
  console.log('SKIP: playwright-core is not installed (npm ci in tests/browser, scripts/bootstrap does it)');
  process.exit(SKIP);
}

export function log(...a) { console.log(...a); }
export function pass(msg) { console.log('PASS: ' + msg); }

export class Fail extends Error {}
export function assert(cond, msg) { if (!cond) throw new Fail(msg); }

export async function launch(opts = {}) {
  if (!existsSync(CHROMIUM)) {
    console.log(`SKIP: no ${CHROMIUM} (apt-get install chromium; scripts/bootstrap does it)`);
    process.exit(SKIP);
  }
  const browser = await pw.chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: tests run as root in containers, where chromium's
    // sandbox cannot start.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    ...opts,
  });
  const problems = [];
  const pages = [];
  return {
    browser,
    problems,
    // A page in a context of its own (cookies, storage): two contexts are
    // two users. ignoreHTTPSErrors: the tests' dev PKI is not in chromium's
    // trust store.
    async page(ctxOpts = {}) {
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true, ...ctxOpts });
      const page = await ctx.newPage();
      watch(page, problems);
      pages.push(page);
      return page;
    },
    async done() {
      await browser.close();
      if (problems.length) throw new Fail('the browser saw problems:\n  ' + problems.join('\n  '));
    },
  };
}

// Watch one page; expected statuses are registered on the page itself.
function watch(page, problems) {
  const expected = []; // [RegExp, status]
  const isExpected = (url, status) => expected.some(([re, st]) => re.test(url) && (st === undefined || st === status));
  page.expectStatus = (re, status) => { expected.push([re, status]); };
  page.clearExpected = () => { expected.length = 0; };
  page.on('console', (m) => {
    const text = m.text();
    if (/Content.Security.Policy|Refused to (load|execute|apply|connect)/i.test(text)) {
      problems.push(`CSP: ${text}`);
      return;
    }
    if (m.type() !== 'error') return;
    // Chromium logs every >= 400 answer as "Failed to load resource";
    // the response handler below judges those.
    if (/^Failed to load resource: the server responded with a status of/.test(text)) return;
    problems.push(`console error: ${text} (${m.location().url || ''})`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('requestfailed', (r) => {
    const f = r.failure();
    problems.push(`request failed: ${r.method()} ${r.url()}: ${f ? f.errorText : '?'}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && !isExpected(r.url(), r.status()))
      problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  // CSP violations also reach the page as securitypolicyviolation events:
  // report them through the console, where the handler above sees them.
  page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`Content-Security-Policy violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
}

// Fail now if the browser has seen problems (a step boundary).
export function check(b, step) {
  if (b.problems.length) throw new Fail(`${step}: the browser saw problems:\n  ` + b.problems.join('\n  '));
}

// A screenshot for the documentation (docs/img/NAME.png), when
// EG_SCREENSHOTS names the folder (the test run by hand does; ctest does
// not write into the source tree).
export async function shot(page, name) {
  const dir = process.env.EG_SCREENSHOTS;
  if (!dir) return;
  const file = `${dir}/${name}.png`;
  mkdirSync(dirname(file), { recursive: true });
  await page.screenshot({ path: file });
}

// An accessibility audit of the page as it is now: axe-core (npm, pinned in
// package-lock.json, test-time only: the core never serves it) evaluated in
// the page through the DevTools protocol, which the page's CSP does not
// govern, so the console's policy stays as strict under test as in use.
// WCAG 2.1 A and AA and axe's best practices; a serious or critical
// violation fails the test, the others are listed.
let axeSource;
export async function a11y(page, where) {
  if (!axeSource) {
    try {
      axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    } catch {
      throw new Fail('axe-core is not installed: npm ci in tests/browser (scripts/bootstrap does it)');
    }
  }
  const t0 = Date.now();
  if (await page.evaluate(() => typeof window.axe === 'undefined')) await page.evaluate(axeSource);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      resultTypes: ['violations'],
    });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const say = (v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.join(', ')})`;
  for (const v of found.filter((x) => !bad.includes(x))) log(`a11y note, ${where}: ${say(v)}`);
  log(`a11y: ${where} audited in ${Date.now() - t0} ms`);
  assert(!bad.length, `${where}: accessibility violations:\n  ` + bad.map(say).join('\n  '));
  return found.length;
}

// Run main(), exit 0 / 1 (77 was taken above). Every test ends so.
export async function run(main) {
  try {
    await main();
    process.exit(0);
  } catch (e) {
    console.log('FAIL: ' + (e instanceof Fail ? e.message : e.stack || e));
    process.exit(1);
  }
}
