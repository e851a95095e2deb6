// The console's load times (bench/console/run.sh sets EG_*): for each of
// LOADS loads in a fresh browser context, signed in beforehand, the time
// from the navigation's start to the first contentful paint, to an
// interactive device list (the first page's 50 rows in the table) and to
// the dashboard's counts, each a new document; and their medians.
import { launch, run, assert } from '../../tests/browser/harness.mjs';

const URL = process.env.EG_URL;
const LOADS = Number(process.env.LOADS || 10);
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor((s.length - 1) / 2)]; };

run(async () => {
  const b = await launch();
  const fcp = [], list = [], stats = [];
  for (let i = 0; i < LOADS; i++) {
    const page = await b.page();
    page.expectStatus(/\/api\/v1\/whoami$/, 401);
    await page.goto(URL + '/ui/');
    await page.fill('#user', process.env.EG_ADMIN);
    await page.fill('#password', process.env.EG_ADMIN_PW);
    await page.click('#signin');
    await page.waitForSelector('#states');
    page.clearExpected();
    // A fresh document (not a hash change): the console loads, finds its
    // session (the cookie), and draws the first page of devices.
    await page.goto('about:blank');
    await page.goto(URL + '/ui/#/devices');
    await page.waitForSelector('#devices tbody tr');
    const tl = await page.evaluate(() => performance.now());
    const f = await page.evaluate(() => {
      const e = performance.getEntriesByName('first-contentful-paint')[0];
      return e ? e.startTime : -1;
    });
    const rows = await page.$$eval('#devices tbody tr', (r) => r.length);
    assert(rows === 50, `${rows} rows`);
    // The dashboard, also a fresh document (its counts cover the registry).
    await page.goto('about:blank');
    await page.goto(URL + '/ui/#/dashboard');
    await page.waitForSelector('#states');
    const ts = await page.evaluate(() => performance.now());
    fcp.push(f);
    list.push(tl);
    stats.push(ts);
    console.log(`load ${i + 1}: first paint ${Math.round(f)} ms, device list ${Math.round(tl)} ms, dashboard ${Math.round(ts)} ms`);
    await page.context().close();
  }
  console.log(`median of ${LOADS}: first paint ${Math.round(median(fcp))} ms, interactive device list ${Math.round(median(list))} ms, dashboard ${Math.round(median(stats))} ms (from navigation start)`);
  await b.done();
});
