// Self-test of the widget half of flow.mjs in real headless Chromium, against
// two local servers on 127.0.0.1: a static "customer site" serving the demo
// page, and a fake Userz API (another origin, so CORS is exercised) serving
// /widget.js, POST /v1/feedback/upload-url, the signed PUT and POST /v1/feedback.
//
//   source scripts/services.sh && svc_browser && node tests/browser/selftest.mjs

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

import { artifacts, launchBrowser, widgetFlow } from './flow.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const WIDGET = readFileSync(path.join(here, '..', '..', 'userz-http', 'assets', 'widget.js'));
const KEY = 'pub_selftest_0123456789';

function listen(handler) {
  const server = createServer(handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
const origin = (server) => `http://127.0.0.1:${server.address().port}`;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A fake API that records what it receives; `refuse` makes /v1/feedback answer an error. */
async function fakeApi({ refuse } = {}) {
  const seen = { feedback: [], uploads: [], puts: [] };
  const server = await listen(async (req, res) => {
    const cors = {
      'Access-Control-Allow-Origin': req.headers.origin || '*',
      // A real server lists what it allows; the signed PUT carries the headers
      // the upload-url answer named, so the blob route must allow those too.
      'Access-Control-Allow-Headers': req.headers['access-control-request-headers'] || 'Content-Type',
      'Access-Control-Allow-Methods': 'POST, PUT, OPTIONS',
    };
    const json = (status, value) => {
      res.writeHead(status, { ...cors, 'Content-Type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    const url = new URL(req.url, 'http://x');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors);
      return res.end();
    }
    if (req.method === 'GET' && url.pathname === '/widget.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      return res.end(WIDGET);
    }
    const body = await readBody(req);
    if (req.method === 'POST' && url.pathname === '/v1/feedback/upload-url') {
      seen.uploads.push({ headers: req.headers, body: JSON.parse(body) });
      return json(200, {
        uploadUrl: `${origin(server)}/blob/upload-1?sig=abc`,
        key: 'uploads/upload-1',
        headers: { 'Content-Type': 'image/png', 'x-amz-meta-test': 'yes' },
      });
    }
    if (req.method === 'PUT' && url.pathname === '/blob/upload-1') {
      seen.puts.push({ headers: req.headers, size: body.length, sig: url.searchParams.get('sig') });
      res.writeHead(200, cors);
      return res.end();
    }
    if (req.method === 'POST' && url.pathname === '/v1/feedback') {
      seen.feedback.push({ headers: req.headers, body: JSON.parse(body) });
      if (refuse) return json(403, { error: { code: refuse, message: 'This origin is not allowed for the app.' } });
      return json(201, { id: 'fb_selftest_1', status: 'received' });
    }
    json(404, { error: { code: 'not_found', message: 'no such route' } });
  });
  return { server, seen };
}

async function demoSite(apiOrigin, tokenAttr = '') {
  const page = `<!doctype html><html><head><meta charset="utf-8"><title>Acme shop</title>
<style>button{background:red!important}#userz-feedback-button{display:none!important}</style></head>
<body><h1>Acme shop</h1><p>Checkout demo page.</p><button id="checkout">Checkout</button>
<script src="${apiOrigin}/widget.js" data-userz-key="${KEY}" data-userz-endpoint="${apiOrigin}"${tokenAttr}></script>
</body></html>`;
  return listen((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(page);
  });
}

test('the widget submits feedback with console logs and a screenshot, cross-origin', async () => {
  const { server: api, seen } = await fakeApi();
  const site = await demoSite(origin(api), ' data-userz-user-token="jwt.user.token"');
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext({ viewport: { width: 1024, height: 700 } })).newPage();
    const art = artifacts(process.env.USERZ_ARTIFACTS_DIR || path.join(here, 'artifacts', 'selftest'));
    const id = await widgetFlow(page, { demoUrl: `${origin(site)}/`, art, text: 'userz-browser-test: checkout does nothing' });
    assert.equal(id, 'fb_selftest_1');

    assert.equal(seen.uploads.length, 1);
    const up = seen.uploads[0];
    assert.equal(up.headers['x-userz-public-key'], KEY);
    assert.equal(up.headers['x-userz-user-token'], 'jwt.user.token');
    assert.equal(up.body.kind, 'screenshot');
    assert.equal(up.body.contentType, 'image/png');
    assert.ok(up.body.byteSize > 1000, `screenshot size ${up.body.byteSize}`);
    assert.equal(seen.puts.length, 1);
    assert.equal(seen.puts[0].size, up.body.byteSize, 'the PUT carries the announced bytes');
    assert.equal(seen.puts[0].sig, 'abc', 'the signed URL is used as given');
    assert.equal(seen.puts[0].headers['x-amz-meta-test'], 'yes', 'the returned headers are sent');
    assert.equal(seen.puts[0].headers['content-type'], 'image/png');

    assert.equal(seen.feedback.length, 1);
    const { headers, body } = seen.feedback[0];
    assert.equal(headers['x-userz-public-key'], KEY);
    assert.equal(headers['x-userz-user-token'], 'jwt.user.token');
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(body.text, 'userz-browser-test: checkout does nothing');
    assert.equal(body.severity, 'high');
    assert.equal(body.url, `${origin(site)}/`);
    assert.match(body.userAgent, /Chrome/);
    assert.deepEqual(Object.keys(body.viewport).sort(), ['dpr', 'h', 'w']);
    assert.equal(body.viewport.w, 1024);
    const err = body.consoleLogs.find((e) => e.level === 'error' && e.message.includes('checkout failed'));
    assert.ok(err, JSON.stringify(body.consoleLogs));
    assert.equal(typeof err.ts, 'number');
    assert.deepEqual(body.attachments, [
      { key: 'uploads/upload-1', kind: 'screenshot', contentType: 'image/png', byteSize: up.body.byteSize },
    ]);
    const allowed = ['text', 'severity', 'url', 'userAgent', 'viewport', 'consoleLogs', 'attachments'];
    assert.deepEqual(Object.keys(body).filter((k) => !allowed.includes(k)), [], 'only fields the API accepts');

    // The host page's CSS (which hides #userz-feedback-button and paints every
    // button red) does not reach the widget inside its shadow root.
    const bg = await page.locator('#userz-feedback-button').evaluate((b) => getComputedStyle(b).backgroundColor);
    assert.equal(bg, 'rgb(37, 99, 235)');
  } finally {
    await browser.close();
    site.close();
    api.close();
  }
});

test('the widget keeps the last 50 console entries, cuts long ones and catches uncaught errors', async () => {
  const { server: api } = await fakeApi();
  const site = await demoSite(origin(api));
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    await page.goto(`${origin(site)}/`);
    await page.locator('#userz-feedback-button').waitFor();
    const logs = await page.evaluate(async () => {
      for (let i = 0; i < 60; i++) console.log('line', i);
      console.warn('x'.repeat(999) + '\u{1F600}tail');
      setTimeout(() => {
        throw new Error('boom from a timer');
      });
      Promise.reject(new Error('rejected promise'));
      await new Promise((r) => setTimeout(r, 100));
      return window.Userz.logs();
    });
    assert.equal(logs.length, 50);
    const long = logs.find((e) => e.level === 'warn');
    assert.equal(long.message.length, 999, 'a surrogate pair at the cut is dropped whole');
    assert.ok(logs.some((e) => e.level === 'error' && e.message.includes('boom from a timer')));
    assert.ok(logs.some((e) => e.level === 'error' && e.message.includes('rejected promise')));
    assert.equal(logs[0].message, 'line 13');
  } finally {
    await browser.close();
    site.close();
    api.close();
  }
});

test('the widget shows the API error code and message', async () => {
  const { server: api, seen } = await fakeApi({ refuse: 'origin_not_allowed' });
  const site = await demoSite(origin(api));
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const art = artifacts(path.join(process.env.USERZ_ARTIFACTS_DIR || path.join(here, 'artifacts', 'selftest'), 'error'));
    await assert.rejects(
      widgetFlow(page, { demoUrl: `${origin(site)}/`, art, text: 'refused report', attachScreenshot: false }),
      /origin_not_allowed: This origin is not allowed for the app\./,
    );
    const status = page.locator('#userz-feedback-status');
    assert.equal(await status.getAttribute('data-state'), 'error');
    assert.equal(await status.getAttribute('data-error-code'), 'origin_not_allowed');
    assert.equal(seen.feedback[0].headers['x-userz-user-token'], undefined, 'public mode sends no user token');
    assert.equal(seen.uploads.length, 0);
  } finally {
    await browser.close();
    site.close();
    api.close();
  }
});

test('Userz.init with a token function sends the private-mode token it returns', async () => {
  const { server: api, seen } = await fakeApi();
  const page0 = `<!doctype html><html><body><p>App</p><script src="${origin(api)}/widget.js"></script>
<script>Userz.init({ publicKey: '${KEY}', endpoint: '${origin(api)}/', userToken: () => Promise.resolve('token-from-fn') });</script>
</body></html>`;
  const site = await listen((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(page0);
  });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const art = artifacts(path.join(process.env.USERZ_ARTIFACTS_DIR || path.join(here, 'artifacts', 'selftest'), 'init'));
    const id = await widgetFlow(page, { demoUrl: `${origin(site)}/`, art, text: 'private mode', attachScreenshot: false });
    assert.equal(id, 'fb_selftest_1');
    assert.equal(seen.feedback[0].headers['x-userz-user-token'], 'token-from-fn');
    assert.equal(seen.feedback[0].headers['x-userz-public-key'], KEY);
    assert.equal(seen.feedback[0].body.attachments, undefined, 'no attachment without a screenshot');
    await assert.rejects(page.evaluate(() => Userz.init({ publicKey: 'sk_live_x', endpoint: 'http://x' })), /publicKey/);
  } finally {
    await browser.close();
    site.close();
    api.close();
  }
});
