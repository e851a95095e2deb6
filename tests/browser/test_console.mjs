// The admin console in chromium (started by
// tests/integration/test_browser_console.sh, which sets EG_* and starts
// Redis, exsim, the proxy and the core). Every step's problems in the
// browser (CSP, console errors, failed requests) fail the test.
import { execFileSync } from 'node:child_process';
import { launch, run, pass, assert, check, shot, a11y } from './harness.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run tests/integration/test_browser_console.sh`);
  return v;
};
const URL = env('EG_URL');
const MARKUP = '<script>alert(1)</script><img src=x onerror=alert(2)>';

// Does a FolderSync of the device get through the proxy to Exchange?
function reaches(device) {
  let out = '';
  try {
    out = execFileSync(env('EG_EASCLIENT'), ['--url', env('EG_PROXY'), '--user', 'alice', '--device',
      device, '--type', 'iPhone', '--show-headers', 'FolderSync', env('EG_FSXML')],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  } catch (e) {
    out = String(e.stdout || '');
  }
  return /^X-Exsim-Cmd: FolderSync/im.test(out);
}

async function signIn(page, user, password) {
  await page.fill('#user', user);
  await page.fill('#password', password);
  await page.click('#signin');
}

// Only what the page shows as text: markup must never become elements.
// Open a device's page and wait until it is that device's: from another
// device's page only the hash changes, and the old page's elements are
// there until the new one is drawn.
async function openDevice(page, id) {
  await page.goto(URL + '/ui/#/device/' + id);
  await page.waitForFunction((want) => {
    const h = document.querySelector('h1');
    return h && h.textContent.includes(want) && document.querySelector('#facts');
  }, id);
}

async function noInjectedMarkup(page, where) {
  const bad = await page.evaluate(() =>
    document.querySelectorAll('main script, main img, #top script, #top img').length);
  assert(bad === 0, `${where}: markup from the data became ${bad} element(s)`);
}

run(async () => {
  const b = await launch();
  const page = await b.page({ viewport: { width: 1280, height: 800 } });
  page.on('dialog', (d) => { b.problems.push(`a dialog opened: ${d.message()}`); d.dismiss(); });

  // 1. The page, its headers, the sign-in form (whoami says 401 first).
  page.expectStatus(/\/api\/v1\/whoami$/, 401);
  const resp = await page.goto(URL + '/ui/');
  const hd = resp.headers();
  assert(/default-src 'none'/.test(hd['content-security-policy'] || ''), 'no strict CSP on /ui/');
  assert(hd['x-frame-options'] === 'DENY', 'no X-Frame-Options: DENY');
  await page.waitForSelector('form.signin');
  await shot(page, 'console-signin');
  await a11y(page, 'sign-in');
  pass('the console shows its sign-in form (no serious accessibility violation)');

  // 2. A wrong password, then markup as the user name: the fixed message.
  page.expectStatus(/\/api\/v1\/login$/, 401);
  await signIn(page, env('EG_ADMIN'), 'not the password');
  await page.waitForFunction(() => document.querySelector('#signin-error').textContent.length > 0);
  const err = await page.textContent('#signin-error');
  assert(/Wrong user name or password/.test(err), `wrong password said: ${err}`);
  await signIn(page, MARKUP, MARKUP);
  await page.waitForFunction(() => /Wrong/.test(document.querySelector('#signin-error').textContent));
  await noInjectedMarkup(page, 'sign-in');
  assert((await page.context().cookies()).length === 0, 'a failed sign-in set a cookie');
  check(b, 'wrong password');
  pass('a wrong password is refused with a message next to the form, no cookie');

  // 3. Sign in: the session cookie's attributes; the dashboard's counts;
  // the first page of devices.
  await signIn(page, env('EG_ADMIN'), env('EG_ADMIN_PW'));
  await page.waitForSelector('#states');
  const count = async (st) => Number(await page.textContent(`#states [data-state="${st}"] .n`));
  assert((await count('block')) === 3 && (await count('quarantine')) === 1 && (await count('total')) === 66,
    `dashboard counts: block ${await count('block')}, quarantine ${await count('quarantine')}, total ${await count('total')}`);
  assert((await page.$$('#audit tbody tr')).length > 0, 'the dashboard shows no events');
  // The proxy (2 workers) from its presence keys in Redis.
  await page.waitForSelector('#proxies tbody tr');
  const prow = await page.$$eval('#proxies tbody tr td', (td) => td.map((x) => x.textContent));
  assert(prow[2] === 'ready' && prow[3] === '2' && /^\d/.test(prow[1]), `the proxy row: ${prow.join(' | ')}`);
  await noInjectedMarkup(page, 'dashboard');
  await shot(page, 'console-dashboard');
  // Compliance: the cards add up to the registry, and each opens the list
  // filtered by it; the chart counts every device as new today.
  const verdict = async (v) => Number(await page.textContent(`#compliance [data-compliance="${v}"] .n`));
  const [compliant, failing, grace, unchecked] = [await verdict('compliant'), await verdict('failing'),
    await verdict('grace'), await verdict('unchecked')];
  assert(compliant + failing + unchecked === 66 && grace <= failing && unchecked > 0,
    `compliance counts: compliant ${compliant}, failing ${failing}, grace ${grace}, unchecked ${unchecked}`);
  assert((await page.$$('#activity svg.chart rect.bar-registered')).length > 0,
    'the chart has no bars: ' + (await page.$eval('#activity', (e) => e.outerHTML.slice(0, 800))));
  assert(/30/.test(await page.textContent('#activity figcaption')), 'the chart has no caption');
  await page.click('#activity details summary');
  const perDay = await page.$$eval('#activity-table tbody tr', (tr) => tr.map((r) => Number(r.children[1].textContent)));
  // (today's, or yesterday's and today's when the run spans midnight UTC)
  assert(perDay.length === 30 && perDay[28] + perDay[29] === 66 && perDay.slice(0, 28).every((n) => n === 0),
    `new devices per day: ${perDay.join(',')}`);
  await a11y(page, 'dashboard');
  await page.click('button[data-period="hours"]');
  await page.waitForSelector('#activity[data-period="hours"]');
  assert((await page.$$('#activity-table tbody tr')).length === 48, 'the hourly table has not 48 rows');
  assert(await page.getAttribute('button[data-period="hours"]', 'aria-pressed') === 'true', 'the period button is not pressed');
  await page.click(`#compliance [data-compliance="unchecked"]`);
  await page.waitForFunction((n) => location.hash.includes('compliance=unchecked') &&
    document.querySelector('#f-compliance')?.value === 'unchecked' &&
    document.querySelectorAll('#devices tbody tr').length === n, Math.min(50, unchecked));
  pass(`the dashboard counts devices by compliance (${compliant} compliant, ${unchecked} not evaluated; ` +
    'each a link to its list) and charts 30 days of new devices, with the figures as a table');
  await page.goto(URL + '/ui/#/dashboard');
  await page.waitForSelector('#states');
  await page.click('#nav a[href="#/devices"]');
  await page.waitForSelector('#devices tbody tr');
  const cookies = await page.context().cookies();
  const c = cookies.find((x) => x.name === '__Host-egc');
  assert(c, `no session cookie: ${JSON.stringify(cookies)}`);
  assert(c.httpOnly && c.secure && c.sameSite === 'Strict' && c.path === '/',
    `session cookie attributes: ${JSON.stringify(c)}`);
  assert(!(await page.evaluate(() => document.cookie)).includes('egc'), 'the page can read the session cookie');
  let rows = await page.$$eval('#devices tbody tr', (tr) => tr.map((r) => r.dataset.id));
  assert(rows.length === 50, `first page has ${rows.length} rows, want 50`);
  await noInjectedMarkup(page, 'device list');
  await shot(page, 'console-devices');
  await a11y(page, 'devices');
  check(b, 'sign in');
  pass('sign-in sets a Secure, HttpOnly, SameSite=Strict cookie and lists the first 50 devices');

  // 4. Paging (server side): next and back.
  await page.click('#next');
  await page.waitForFunction((first) => {
    const r = document.querySelector('#devices tbody tr');
    return r && r.dataset.id !== first;
  }, rows[0]);
  const page2 = await page.$$eval('#devices tbody tr', (tr) => tr.map((r) => r.dataset.id));
  assert(page2.length > 0 && !page2.some((id) => rows.includes(id)), 'page 2 repeats page 1');
  await page.click('#prev');
  await page.waitForFunction((first) => document.querySelector('#devices tbody tr').dataset.id === first, rows[0]);
  pass(`paging: page 2 has ${page2.length} other devices, back to page 1`);

  // 5. Filters: state, user; markup in every filter field.
  await page.selectOption('#f-state', 'block');
  await page.click('#apply');
  await page.waitForFunction(() => location.hash.includes('state=block'));
  await page.waitForFunction(() => [...document.querySelectorAll('#devices tbody tr')].every((r) => r.dataset.id.startsWith('BROWBLK')));
  rows = await page.$$eval('#devices tbody tr', (tr) => tr.map((r) => r.dataset.id));
  assert(rows.length === 3, `state=block shows ${rows.join(',')}`);
  await shot(page, 'console-devices-filtered');
  await page.click('#clear');
  // The list is drawn again, with a new form: wait for it before typing.
  await page.waitForFunction(() => document.querySelector('#f-state').value === '' &&
    document.querySelectorAll('#devices tbody tr').length === 50);
  await page.fill('#f-user', 'carol');
  await page.click('#apply');
  await page.waitForFunction(() => {
    const r = [...document.querySelectorAll('#devices tbody tr')];
    return r.length === 1 && r[0].dataset.id === 'BROWQ1';
  });
  await page.fill('#f-user', 'mallory' + MARKUP);
  await page.click('#apply');
  await page.waitForFunction(() => {
    const r = [...document.querySelectorAll('#devices tbody tr')];
    return r.length === 1 && r[0].dataset.id === 'BROWX1';
  });
  await noInjectedMarkup(page, 'device list');
  const shown = await page.textContent('#devices');
  assert(shown.includes('mallory<script>alert(1)</script>'), `the user name with markup is shown as: ${shown}`);
  for (const f of ['#f-user', '#f-type', '#f-os']) await page.fill(f, MARKUP);
  await page.click('#apply');
  await page.waitForSelector('#none');
  await noInjectedMarkup(page, 'filters');
  assert((await page.inputValue('#f-user')) === MARKUP, 'the filter field lost its text');
  check(b, 'filters');
  pass('filters by state and user work; markup in the filter fields is kept as text');

  // 5b. The search box (a DeviceId or user prefix, on the server) and the
  // column headers sorting the whole registry on the server, paged.
  await page.goto(URL + '/ui/#/devices');
  await page.waitForFunction(() => document.querySelector('#f-q') && document.querySelector('#f-q').value === '' &&
    document.querySelectorAll('#devices tbody tr').length === 50);
  await page.fill('#f-q', 'browp00');
  await page.click('#apply');
  await page.waitForFunction(() => {
    const r = [...document.querySelectorAll('#devices tbody tr')];
    return r.length === 10 && r.every((x) => x.dataset.id.startsWith('BROWP00'));
  });
  await page.fill('#f-q', 'USER6');
  await page.click('#apply');
  await page.waitForFunction(() => {
    const r = [...document.querySelectorAll('#devices tbody tr')];
    return r.length === 8 && r.every((x) => x.children[1].textContent === 'user6');
  });
  await page.click('#clear');
  await page.waitForFunction(() => document.querySelector('#f-q').value === '' &&
    document.querySelectorAll('#devices tbody tr').length === 50);
  await page.click('#devices [data-col="user"]');
  // BROW1 is also first by DeviceId: wait for the redrawn header, not the row.
  await page.waitForFunction(() => /sort=user/.test(location.hash) &&
    document.querySelector('#devices th[aria-sort] [data-col="user"]') &&
    document.querySelector('#devices tbody tr').dataset.id === 'BROW1');
  await page.click('#devices [data-col="user"]');
  await page.waitForFunction(() => /order=desc/.test(location.hash) &&
    document.querySelector('#devices tbody tr').dataset.id === 'BROWP055');
  const sortAttr = await page.$eval('#devices th[aria-sort]', (th) => th.getAttribute('aria-sort'));
  assert(sortAttr === 'descending', `the sorted header says aria-sort=${sortAttr}`);
  const users1 = await page.$$eval('#devices tbody tr', (tr) => tr.map((r) => r.children[1].textContent));
  await page.click('#next');
  await page.waitForFunction(() => document.querySelector('#devices tbody tr').dataset.id !== 'BROWP055');
  const users2 = await page.$$eval('#devices tbody tr', (tr) => tr.map((r) => r.children[1].textContent));
  assert(users1.length === 50 && users2.length === 16 && users2[0] <= users1[49] && users2.at(-1) === 'alice',
    `user order across pages: ${users1.at(-1)} then ${users2.join(',')}`);
  check(b, 'search and sort');
  pass('the search box finds by DeviceId and user prefix; a header sorts the whole registry on the server, across pages');

  // 6. The device with markup in its fields: shown as text.
  await openDevice(page, 'BROWX1');
  await page.waitForSelector('#facts');
  await noInjectedMarkup(page, 'device page');
  const model = await page.textContent('[data-fact="model"]');
  assert(model === MARKUP, `the model is shown as ${model}`);
  pass('a device page shows markup in its facts as text');

  // 7. Block BROW1: a confirmation naming device and user, then the proxy
  // refuses the phone within 1 s.
  assert(reaches('BROW1'), 'BROW1 does not reach Exchange before the block');
  await openDevice(page, 'BROW1');
  await page.waitForSelector('#actions [data-action="block"]');
  await shot(page, 'console-device');
  await a11y(page, 'device page');
  await page.click('#actions [data-action="block"]');
  await page.waitForSelector('#confirm[open]');
  const ask = await page.textContent('#confirm-text');
  assert(ask.includes('BROW1') && ask.includes('alice'), `the confirmation says: ${ask}`);
  await shot(page, 'console-confirm');
  // A request that starts within 1 s of the click must be refused (each
  // try runs easclient to the end: the last may end later than that).
  const t0 = Date.now();
  await page.click('#confirm-ok');
  let refused = false, started = 0;
  while (!refused && (started = Date.now() - t0) < 1000) refused = !reaches('BROW1');
  const ms = started;
  assert(refused, 'the proxy still lets BROW1 through 1 s after the block');
  await page.waitForFunction(() => /block/.test(document.querySelector('[data-fact="state"]').textContent));
  check(b, 'block');
  pass(`block from the console: the proxy refused a request of BROW1 sent ${ms} ms after the click`);

  // 8. Approve the quarantined device.
  await openDevice(page, 'BROWQ1');
  await page.waitForSelector('#actions [data-action="approve"]');
  await page.click('#actions [data-action="approve"]');
  await page.waitForSelector('#confirm[open]');
  assert((await page.textContent('#confirm-text')).includes('carol'), 'the approval does not name the user');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => document.querySelector('[data-fact="state"]').textContent === 'allow');
  check(b, 'approve');
  pass('approving a quarantined device allows it');

  // 8b. The block of BROW1 is in the chart's last 48 hours.
  await page.goto(URL + '/ui/#/dashboard');
  await page.click('button[data-period="hours"]');
  await page.waitForSelector('#activity[data-period="hours"]');
  const blocked = await page.$$eval('#activity-table tbody tr', (tr) => tr.map((r) => Number(r.children[3].textContent)));
  assert(blocked[46] + blocked[47] >= 1 && blocked.slice(0, 46).every((n) => n === 0),
    `blocks per hour: ${blocked.join(',')}`);
  pass(`the chart counts the block of this hour (${blocked[46] + blocked[47]})`);

  // 8c. A device's certificate, revoked behind a confirmation naming the
  // device and its user; the revocation is audited.
  await openDevice(page, 'BROWP001');
  await page.waitForSelector('#certs tr[data-serial="0BADC0DE01"] [data-status="valid"]');
  const subject = await page.textContent('#certs tr[data-serial="0BADC0DE01"] td:nth-child(2)');
  assert(/CN=user1/.test(subject), `the certificate's subject is shown as ${subject}`);
  await page.click('#certs button[data-serial="0BADC0DE01"]');
  await page.waitForSelector('#confirm[open]');
  const askc = await page.textContent('#confirm-text');
  assert(askc.includes('BROWP001') && askc.includes('user1') && askc.includes('0BADC0DE01'),
    `the revocation's confirmation says: ${askc}`);
  await page.click('#confirm-ok');
  await page.waitForSelector('#certs tr[data-serial="0BADC0DE01"] [data-status="revoked"]');
  assert((await page.$$('#certs button[data-serial]')).length === 0, 'a revoked certificate can be revoked again');
  assert(/revoked/.test(await page.textContent('#status')), 'the revocation is not said');
  const hist = await page.textContent('#history');
  assert(/cert-revoke/.test(hist) && /0BADC0DE01/.test(hist), `the history after the revocation: ${hist}`);
  check(b, 'revoke certificate');
  pass('a device\'s certificate is listed and revoked from its page, behind a confirmation naming device and user');

  // 9. The audit log: the block is there, filtered by target; CSV export.
  await page.goto(URL + '/ui/#/audit');
  await page.waitForSelector('#audit tbody tr');
  await page.fill('#f-target', 'BROW1');
  await page.click('#apply');
  await page.waitForFunction(() => [...document.querySelectorAll('#audit tbody tr')].length > 0 &&
    [...document.querySelectorAll('#audit tbody tr')].every((r) => r.children[4].textContent === 'BROW1'));
  const acts = await page.$$eval('#audit tbody tr', (tr) => tr.map((r) => r.children[3].textContent + ' ' + r.children[1].textContent));
  assert(acts.some((a) => /block/.test(a) && / root$/.test(a)), `the audit log of BROW1: ${acts.join('; ')}`);
  await shot(page, 'console-audit');
  await a11y(page, 'audit');
  page.expectStatus(/\/api\/v1\/audit\?/, 400);
  await page.fill('#f-target', MARKUP);
  await page.click('#apply');
  await page.waitForFunction(() => /f-target|target=/.test(location.hash));
  // Wait for that filter's page (its rows, none, or the API's refusal), not
  // the previous page still shown: else the next filter's page can be drawn
  // first and then replaced by this one's late answer.
  await page.waitForFunction((m) => document.querySelector('#none, main [role=alert]') ||
    [...document.querySelectorAll('#audit tbody tr')].every((r) => r.children[4].textContent === m), MARKUP);
  await noInjectedMarkup(page, 'audit filter');
  await page.fill('#f-target', 'BROW1');
  await page.click('#apply');
  await page.waitForFunction(() => [...document.querySelectorAll('#audit tbody tr')].length > 0 &&
    [...document.querySelectorAll('#audit tbody tr')].every((r) => r.children[4].textContent === 'BROW1'));
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const csv = await (await import('node:fs')).promises.readFile(await dl.path(), 'utf8');
  const lines = csv.trim().split('\r\n');
  assert(lines[0] === 'id,at,actor,address,action,target,detail', `CSV header: ${lines[0]}`);
  assert(lines.length === acts.length + 1 && lines.slice(1).every((l) => l.includes(',BROW1,')),
    `CSV has ${lines.length - 1} rows for ${acts.length} shown: ${csv.slice(0, 300)}`);
  check(b, 'audit');
  pass(`the audit log filters by target and exports ${lines.length - 1} rows as CSV`);

  // 9b. Admins and tokens: the API's errors next to the form (markup in
  // them shown as text), an account created, a token minted once, revoked.
  await page.click('#nav-admins');
  await page.waitForSelector('#admins tbody tr');
  page.expectStatus(/\/api\/v1\/admins$/, 400);
  page.expectStatus(/\/api\/v1\/admins$/, 422);
  await page.fill('#a-name', MARKUP);
  await page.fill('#a-password', MARKUP);
  await page.click('#a-create');
  await page.waitForFunction(() => document.querySelector('#account-error').textContent.length > 0);
  await noInjectedMarkup(page, 'admins form');
  await page.fill('#a-name', 'victor');
  await page.fill('#a-password', 'short');
  await page.click('#a-create');
  await page.waitForFunction(() => /12 characters/.test(document.querySelector('#account-error').textContent));
  await page.fill('#a-password', 'a long enough passphrase');
  await page.click('#a-create');
  await page.waitForSelector('#admins tr[data-name="victor"]');
  await page.fill('#t-name', MARKUP);
  await page.click('#t-mint');
  await page.waitForSelector('#new-token');
  assert(/^egt_/.test(await page.textContent('#new-token')), 'the minted token is not shown');
  await noInjectedMarkup(page, 'tokens');
  await shot(page, 'console-admins');
  await a11y(page, 'admins');
  const tokId = await page.$eval('#tokens tbody tr:first-child', (r) => r.dataset.id);
  await page.click(`#tokens tr[data-id="${tokId}"] button`);
  await page.waitForSelector('#confirm[open]');
  await page.click('#confirm-ok');
  await page.waitForFunction((id) => /revoked/.test(document.querySelector(`#tokens tr[data-id="${id}"]`).textContent), tokId);
  check(b, 'admins');
  pass('admins and tokens: errors shown next to the form, an account created, a token minted and revoked');

  // 9c. Japanese, switchable: the catalogue's strings.
  await page.selectOption('#lang', 'ja');
  await page.waitForFunction(() => document.querySelector('#signout').textContent === 'サインアウト' &&
    document.querySelector('h1').textContent === '管理者とトークン');
  await shot(page, 'console-admins-ja');
  await a11y(page, 'admins (ja)');
  await page.selectOption('#lang', 'en');
  await page.waitForFunction(() => document.querySelector('#signout').textContent === 'Sign out');
  pass('the console switches to Japanese and back');

  // 9d. The enrollment portal (enroll/portal.c) behind an invitation link,
  // and its page for a key nobody issued: the accessibility audit.
  const ppage = await b.page();
  await ppage.goto(env('EG_ENROLL') + '/enroll/?key=' + env('EG_ENROLL_KEY'));
  await ppage.waitForSelector('form');
  await a11y(ppage, 'enrollment portal');
  ppage.expectStatus(/\/enroll\/\?key=/, 404);
  await ppage.goto(env('EG_ENROLL') + '/enroll/?key=2222-2222-2222-2222-2222-2222-2222');
  await a11y(ppage, 'enrollment portal, unknown key');
  check(b, 'portal');
  pass('the enrollment portal\'s pages (a valid and an unknown key) pass the accessibility audit');

  // 9b. A late answer never replaces a newer page: the device list's answer
  // is held back while the user goes on to the audit log; when it arrives,
  // the audit log stays.
  let release;
  const held = new Promise((r) => { release = r; });
  await page.route(/\/api\/v1\/devices\?/, async (r) => { await held; await r.continue(); });
  const late = page.waitForResponse(/\/api\/v1\/devices\?/);
  await page.goto(URL + '/ui/#/devices');
  await page.goto(URL + '/ui/#/audit');
  await page.waitForSelector('#audit tbody tr');
  release();
  await late;
  await page.waitForTimeout(300);
  assert(await page.$('#audit tbody tr') && !(await page.$('#devices')),
    'the device list answered late and replaced the audit log shown since');
  await page.unroute(/\/api\/v1\/devices\?/);
  pass('a page answered after the user moved on is not drawn over the newer one');

  // 10. CSRF: the session cookie alone changes nothing.
  page.expectStatus(/\/api\/v1\/devices\/BROWQ1\/block$/, 403);
  const st = await page.evaluate(async () => (await fetch('/api/v1/devices/BROWQ1/block', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })).status);
  assert(st === 403, `a POST without X-CSRF-Token answered ${st}`);
  pass('a change with the cookie but without the CSRF token is refused (403)');

  // 11. A viewer, on a phone's screen, signing in with the keyboard only:
  // no action buttons, and the API refuses the change anyway.
  const vpage = await b.page({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  vpage.expectStatus(/\/api\/v1\/whoami$/, 401);
  await vpage.goto(URL + '/ui/#/device/BROWQ1');
  await vpage.waitForSelector('form.signin');
  await vpage.keyboard.type(env('EG_VIEWER')); // the user field has the focus
  await vpage.keyboard.press('Tab');
  await vpage.keyboard.type(env('EG_VIEWER_PW'));
  await vpage.keyboard.press('Enter');
  await vpage.waitForSelector('#viewer-note');
  assert(await vpage.$eval('#nav-admins', (a) => a.hidden), 'a viewer sees the admins page in the menu');
  assert((await vpage.$$('#actions button, [data-action]')).length === 0, 'a viewer sees action buttons');
  vpage.expectStatus(/\/api\/v1\/devices\/BROWQ1\/block$/, 403);
  const vst = await vpage.evaluate(async () => {
    const w = await (await fetch('/api/v1/whoami')).json();
    return (await fetch('/api/v1/devices/BROWQ1/block', { method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': w.csrf }, body: '{}' })).status;
  });
  assert(vst === 403, `a viewer's block answered ${vst}`);
  await shot(vpage, 'console-viewer-phone');
  const wide = await vpage.evaluate(() => document.documentElement.scrollWidth);
  assert(wide <= 390, `the page is ${wide} px wide on a 390 px screen`);
  check(b, 'viewer');
  pass('a viewer sees no actions and the API refuses its change (403)');

  // 12. Sign out: the cookie is gone and the session ended on the server.
  const cookieBefore = (await page.context().cookies()).find((x) => x.name === '__Host-egc');
  await page.click('#signout');
  await page.waitForSelector('form.signin');
  assert(!(await page.context().cookies()).some((x) => x.name === '__Host-egc'), 'the cookie outlived sign-out');
  await page.context().addCookies([cookieBefore]);
  page.expectStatus(/\/api\/v1\/whoami$/, 401);
  const after = await page.evaluate(async () => (await fetch('/api/v1/whoami')).status);
  assert(after === 401, `the old session cookie still works after sign-out (${after})`);
  check(b, 'sign out');
  pass('sign-out ends the session on the server and clears the cookie');

  await b.done();
});
