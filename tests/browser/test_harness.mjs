// The harness catches what it promises to (tests/integration/
// test_browser_harness.sh): pages served here, each with one fault, must
// each leave the problem the harness reports; a clean page none; and an
// error a test declared (expectStatus) is not one.
import http from 'node:http';
import { launch, run, pass, assert, a11y, Fail } from './harness.mjs';

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'";
const pages = {
  '/clean': '<!doctype html><title>clean</title><script src="/ok.js"></script><p>ok</p>',
  '/ok.js': 'document.title = "ran";',
  '/inline': '<!doctype html><title>inline</title><script>document.title = "inline ran";</script>',
  '/style': '<!doctype html><title>style</title><p style="color: red">styled</p>',
  '/console': '<!doctype html><title>console</title><script src="/console.js"></script>',
  '/console.js': 'console.error("something broke");',
  '/throw': '<!doctype html><title>throw</title><script src="/throw.js"></script>',
  '/throw.js': 'throw new Error("uncaught here");',
  '/fetch404': '<!doctype html><title>404</title><script src="/fetch404.js"></script>',
  '/fetch404.js': 'fetch("/nothing-here");',
  '/third': '<!doctype html><title>third</title><script src="/third.js"></script>',
  '/third.js': 'fetch("https://203.0.113.1/x").catch(() => {});',
  '/a11y': '<!doctype html><html lang="en"><title>a11y</title><main><h1>ok</h1>' +
    '<label>Name <input id="n"></label></main></html>',
  '/unlabelled': '<!doctype html><html lang="en"><title>no label</title><main><h1>bad</h1>' +
    '<input id="n"><img src="/ok.js"></main></html>',
};

run(async () => {
  const srv = http.createServer((req, res) => {
    const body = pages[req.url];
    if (body === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('no');
      return;
    }
    const js = req.url.endsWith('.js');
    res.writeHead(200, { 'Content-Type': js ? 'text/javascript' : 'text/html', 'Content-Security-Policy': CSP });
    res.end(body);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${srv.address().port}`;

  // One browser per case, so each case's problems are its own.
  async function problemsOf(path, declare) {
    const b = await launch();
    const page = await b.page();
    if (declare) declare(page);
    await page.goto(base + path);
    await page.waitForTimeout(300);
    const got = [...b.problems];
    await b.browser.close();
    return got;
  }

  const clean = await problemsOf('/clean');
  assert(clean.length === 0, `a clean page: ${clean.join('; ')}`);
  pass('a clean page under a strict CSP leaves no problem');

  const want = {
    '/inline': /^CSP: /,
    '/style': /^CSP: /,
    '/console': /^console error: something broke/,
    '/throw': /^uncaught: uncaught here/,
    '/fetch404': /^HTTP 404: GET .*\/nothing-here/,
    '/third': /^CSP: /,
  };
  for (const [path, re] of Object.entries(want)) {
    const got = await problemsOf(path);
    assert(got.some((p) => re.test(p)), `${path}: want ${re}, the harness saw: ${got.join('; ') || 'nothing'}`);
    pass(`${path}: reported (${got[0]})`);
  }

  const declared = await problemsOf('/fetch404', (p) => p.expectStatus(/\/nothing-here$/, 404));
  assert(declared.length === 0, `a declared 404: ${declared.join('; ')}`);
  pass('an error the test declared with expectStatus is not a problem');

  // The accessibility audit (axe-core): a labelled page passes, an input
  // without a label and an image without alt text fail it.
  const b = await launch();
  const page = await b.page();
  await page.goto(base + '/a11y');
  await a11y(page, '/a11y');
  await page.goto(base + '/unlabelled');
  let said = '';
  try {
    await a11y(page, '/unlabelled');
  } catch (e) {
    if (!(e instanceof Fail)) throw e;
    said = e.message;
  }
  assert(/critical label/.test(said) && /image-alt/.test(said), `the audit of /unlabelled said: ${said || 'nothing'}`);
  await b.browser.close();
  pass('the accessibility audit passes a labelled page and fails an unlabelled input and an image without alt');
  srv.close();
});
