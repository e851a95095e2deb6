// Invitations and enrollment in chromium, started in the background by
// tests/integration/test_browser_enroll.sh, which sets EG_* and does the
// steps outside the browser while this waits (one browser, one admin
// session throughout):
//   1. the admin creates invitations in the console, a viewer looks at
//      them, the user opens the link in a browser context of their own and
//      enrolls an iPhone and an Android phone; the downloads, the PKCS#12
//      password and the keys go to EG_OUT; then EG_OUT/browser.step1;
//   2. (the script checks the downloads and binds a DeviceId through the
//      proxy, then writes the enrollment id into EG_OUT/browser.go)
//   3. the bound device's page shows the enrollment, the audit log the
//      refused second DeviceId; sign-out.
// CSP violations, console errors and unexpected failed requests fail it
// (harness.mjs).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { launch, run, pass, assert, check, shot, a11y } from './harness.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run tests/integration/test_browser_enroll.sh`);
  return v;
};
const URL = env('EG_URL');
const OUT = env('EG_OUT');
const MARKUP = '<img src=x onerror=alert(1)>';

async function signIn(page, user, password) {
  page.expectStatus(/\/api\/v1\/whoami$/, 401);
  await page.goto(URL + '/ui/');
  await page.fill('#user', user);
  await page.fill('#password', password);
  await page.click('#signin');
  await page.waitForSelector('#nav a[href="#/invitations"]', { state: 'visible' });
}

async function openInvitations(page) {
  await page.goto(URL + '/ui/#/invitations');
  await page.waitForSelector('#inv-list table, #inv-none');
}

const stateOf = (page, email) =>
  page.textContent(`#invitations tr[data-email="${email}"] td[data-state]`);

// The portal's choice page, a platform, the page after it.
async function enroll(page, link, platform) {
  await page.goto(link);
  await page.waitForSelector('input[name="platform"]');
  await page.check(`input[name="platform"][value="${platform}"]`);
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  await page.waitForSelector('a[href^="/enroll/dl/"]');
}

async function download(page, file) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('a[href^="/enroll/dl/"]')]);
  await dl.saveAs(file);
}

async function invite(b) {
  const admin = await b.page({ viewport: { width: 1280, height: 900 } });
  admin.on('dialog', (d) => { b.problems.push(`a dialog opened: ${d.message()}`); d.dismiss(); });
  await signIn(admin, env('EG_ADMIN'), env('EG_ADMIN_PW'));
  await admin.click('#nav a[href="#/invitations"]');
  await admin.waitForSelector('#inv-form');
  assert(await admin.isVisible('#inv-none'), 'a new registry lists invitations');

  // 1. A pasted CSV: a header, two good lines, one with markup as the user
  // name, one the browser refuses (three fields), one the server refuses
  // (no address); blank lines and comments are skipped.
  admin.expectStatus(/\/api\/v1\/invitations$/, 400);
  await admin.fill('#inv-addresses', ['email,user', 'alice@example.com,alice', 'bob@example.com',
    'x@example.com,a,b', '', '# later: dave', 'carol', `mallory@example.com,${MARKUP}`].join('\n'));
  await admin.fill('#inv-uses', '2');
  await admin.fill('#inv-expires', '7d');
  await admin.click('#inv-create');
  await admin.waitForFunction(() => document.querySelector('#inv-status').textContent.length > 0);
  const result = await admin.textContent('#inv-status');
  assert(/3 created, 2 refused/.test(result), `the result says: ${result}`);
  const l4 = await admin.textContent('#inv-errors li[data-line="4"]');
  assert(/Line 4 \(x@example.com,a,b\)/.test(l4), `line 4's error: ${l4}`);
  const l7 = await admin.textContent('#inv-errors li[data-line="7"]');
  assert(/Line 7 \(carol\): .*not an e-mail address/.test(l7), `line 7's error (the server's): ${l7}`);
  assert(await admin.inputValue('#inv-addresses') === 'x@example.com,a,b\ncarol',
    'the refused lines are not what is left in the box');
  pass('a pasted CSV: 3 invitations created; the lines refused by the browser and the server are named');

  // 2. Each new one's link and QR code, once; markup stays text.
  const keys = {};
  for (const email of ['alice@example.com', 'bob@example.com', 'mallory@example.com']) {
    const card = `#inv-created .inv-new[data-email="${email}"]`;
    const link = await admin.textContent(card + ' code.inv-link');
    const m = /^https:\/\/127\.0\.0\.1:\d+\/enroll\?key=([A-Za-z0-9-]+)$/.exec(link);
    assert(m, `${email}'s link: ${link}`);
    keys[email] = { link, key: m[1] };
    const qr = await admin.$eval(card + ' img.qr', (i) => ({ src: i.src.slice(0, 22), w: i.naturalWidth, alt: i.alt }));
    assert(qr.src === 'data:image/png;base64,' && qr.w > 20 && qr.alt.includes(email), `${email}'s QR code: ${JSON.stringify(qr)}`);
  }
  const bad = await admin.evaluate(() => document.querySelectorAll('main script, #inv-list img, #inv-created img:not(.qr)').length);
  assert(bad === 0, `markup from a user name became ${bad} element(s)`);
  const listText = await admin.textContent('#inv-list');
  for (const { key } of Object.values(keys)) assert(!listText.includes(key), 'a key is in the list');
  assert(await stateOf(admin, 'alice@example.com') === 'active', 'alice\'s invitation is not active');
  assert((await admin.textContent('#invitations tr[data-email="alice@example.com"] td:nth-child(4)')) === '0 / 2',
    'alice\'s invitation is not 0 of 2 uses');
  await shot(admin, 'console-invitations');
  await a11y(admin, 'invitations');
  pass('each new invitation shows its link and QR code; the list shows no key; markup stays text');

  // 3. One more, alone, that expires in a second; first with uses the
  // server refuses, said next to that field.
  await admin.fill('#inv-addresses', 'erin@example.com');
  await admin.fill('#inv-uses', 'two');
  await admin.fill('#inv-expires', '1s');
  await admin.click('#inv-create');
  await admin.waitForFunction(() => document.querySelector('#inv-uses-error').textContent.length > 0);
  const usesErr = await admin.textContent('#inv-uses-error');
  assert(/max_uses/.test(usesErr) && !(await admin.$('#inv-errors li')), `uses 'two': ${usesErr}`);
  assert(await admin.inputValue('#inv-addresses') === 'erin@example.com', 'the unsent line left the box');
  await admin.fill('#inv-uses', '1');
  await admin.click('#inv-create');
  await admin.waitForSelector('#inv-created .inv-new[data-email="erin@example.com"]');
  keys['erin@example.com'] = { key: /key=(.*)$/.exec(await admin.textContent('#inv-created code.inv-link'))[1] };
  assert(!(await admin.isVisible('#inv-created .inv-new[data-email="alice@example.com"]')),
    'the previous links are still shown');
  writeFileSync(OUT + '/keys.txt', Object.values(keys).map((k) => k.key).join('\n') + '\n');
  check(b, 'creating invitations');

  // 4. A viewer sees the list, no form and no withdraw button.
  const viewer = await b.page({ viewport: { width: 390, height: 844 } });
  await signIn(viewer, env('EG_VIEWER'), env('EG_VIEWER_PW'));
  await openInvitations(viewer);
  assert(await viewer.isVisible('#invitations tr[data-email="alice@example.com"]'), 'the viewer sees no list');
  assert(!(await viewer.$('#inv-form')) && !(await viewer.$('button[data-withdraw]')),
    'the viewer sees the form or a withdraw button');
  assert(await viewer.isVisible('#viewer-note'), 'the viewer is not told why');
  check(b, 'viewer');
  pass('a viewer sees the invitations without the form or any withdraw button');

  // 5. The user, in a browser of their own: the link opens the portal; an
  // iPhone gets the signed profile, an Android phone the PKCS#12 and its
  // password (the invitation has two uses); then the link is used up.
  const user = await b.page({ viewport: { width: 390, height: 844 }, acceptDownloads: true });
  user.expectStatus(/\/favicon\.ico$/, 404);
  const link = keys['alice@example.com'].link;
  await user.goto(link);
  const intro = await user.textContent('main');
  assert(intro.includes('alice@example.com') && intro.includes('root'), `the portal does not say who invited whom: ${intro}`);
  await shot(user, 'portal-invitation');
  await enroll(user, link, 'ios');
  await download(user, OUT + '/alice.mobileconfig');
  await enroll(user, link, 'android');
  await a11y(user, 'portal: the Android page');
  const pw = (await user.textContent('main code')).trim();
  assert(pw.length >= 8, `no PKCS#12 password on the page: '${pw}'`);
  writeFileSync(OUT + '/alice.pw', pw);
  await download(user, OUT + '/alice.p12');
  user.expectStatus(/\/enroll\?key=/, 410);
  await user.goto(link);
  const used = await user.textContent('.error');
  assert(/used/i.test(used), `the used-up link says: ${used}`);
  check(b, 'portal');
  pass('the link opens the portal: an iPhone profile and an Android PKCS#12 downloaded; then the link is used up');

  // 6. Back in the console (a new page load: the links are gone for good):
  // alice's used up, erin's expired; bob's withdrawn after a confirmation
  // that names him, and his link then refused.
  await admin.reload(); // a new document: what the last one held is gone
  await admin.waitForSelector('#inv-list table');
  assert(!(await admin.$('.inv-new')), 'a reload shows a link again');
  const page = await admin.content();
  for (const { key } of Object.values(keys)) assert(!page.includes(key), 'a key is on the reloaded page');
  assert(await stateOf(admin, 'alice@example.com') === 'used up', 'alice\'s invitation is not used up');
  assert(await stateOf(admin, 'erin@example.com') === 'expired', 'erin\'s invitation is not expired');
  const withdraw = '#invitations tr[data-email="bob@example.com"] button[data-withdraw]';
  await admin.click(withdraw);
  await admin.waitForSelector('#confirm[open]');
  const ask = await admin.textContent('#confirm-text');
  assert(ask.includes('bob@example.com'), `the confirmation says: ${ask}`);
  await admin.click('#confirm-cancel');
  assert(await stateOf(admin, 'bob@example.com') === 'active', 'cancel withdrew bob\'s invitation');
  await admin.click(withdraw);
  await admin.waitForSelector('#confirm[open]');
  await shot(admin, 'console-invitation-withdraw');
  await admin.click('#confirm-ok');
  await admin.waitForFunction(() => document.querySelector(
    '#invitations tr[data-email="bob@example.com"] td[data-state]').dataset.state === 'withdrawn');
  assert(await stateOf(admin, 'bob@example.com') === 'withdrawn', 'bob\'s invitation is not withdrawn');
  assert(!(await admin.$(withdraw)), 'a withdrawn invitation still has its button');
  await user.goto(keys['bob@example.com'].link);
  assert(/withdrawn/i.test(await user.textContent('.error')), 'bob\'s withdrawn link is not refused as such');
  check(b, 'states');
  pass('the list: used up, expired, withdrawn (after a confirmation naming the address, and cancel first)');

  return admin;
}

// The script's go-ahead: the contents of EG_OUT/NAME, once it is there.
async function waitFor(name, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) {
    if (existsSync(OUT + '/' + name)) return readFileSync(OUT + '/' + name, 'utf8').trim();
  }
  throw new Error(`no ${name} from the script within ${ms / 1000} s`);
}

async function device(b, admin, want) {
  await admin.goto(URL + '/ui/#/device/PHONE1');
  await admin.waitForFunction(() => {
    const h = document.querySelector('h1');
    return h && h.textContent.includes('PHONE1') && document.querySelector('#facts');
  });
  const fact = async (k) => (await admin.textContent(`[data-fact="${k}"]`)).trim();
  assert(await fact('cert_enrollment') === want, `PHONE1's enrollment: ${await fact('cert_enrollment')} (want ${want})`);
  assert(await fact('user') === 'alice' && await fact('managed') === 'true', 'PHONE1 is not alice\'s managed device');
  assert((await admin.textContent('main')).includes('enroll.bind'), 'PHONE1\'s audit entries lack enroll.bind');
  await shot(admin, 'console-device-enrolled');
  await admin.goto(URL + '/ui/#/audit?target=PHONE2');
  await admin.waitForFunction(() => document.querySelector('main').textContent.includes('device.cert-mismatch'));
  check(b, 'device');
  pass('the console shows PHONE1 bound to the enrollment, and the audit log PHONE2\'s cert-mismatch');
  await admin.click('#signout');
  await admin.waitForSelector('form.signin');
}

run(async () => {
  const b = await launch();
  const admin = await invite(b);
  writeFileSync(OUT + '/browser.step1', '');
  await device(b, admin, await waitFor('browser.go', 120000));
  await b.done();
});
