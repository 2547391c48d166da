// Drives the demo page in Debian's chromium through playwright-core.
// usage: node demo_check.js BASE_URL MODEL IMAGE BAD_FILE OUT_DIR [API_KEY]
// Prints one JSON object: what the page showed, the tab order, every request
// the page made, console errors; writes OUT_DIR/demo.png and demo-error.png.
// With API_KEY (the server runs with it) the key prompt is driven instead:
// no key, a wrong key, the right key, classify, reload, forget; it writes
// OUT_DIR/demo-key.png, demo-key-wrong.png and demo-key-done.png.
// Requests to anything but BASE_URL are aborted (the page must work offline).
// Without API_KEY the "why?" toggle is driven too (keyboard on, the map shown,
// off): demo-why.png; with DEMO_WHY_IMAGE=MODEL:PATH in the environment also
// on that model and image (the map over the model's crop): demo-why-2.png.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

// What the page shows of the key prompt.
async function keyView(page) {
  return page.evaluate(() => ({
    auth: document.body.dataset.auth || '',
    fails: Number(document.body.dataset.authFails || 0),
    panelVisible: !document.getElementById('key-panel').hidden,
    statusVisible: !document.getElementById('key-status').hidden,
    alertRole: document.getElementById('key-alert').getAttribute('role'),
    alert: document.getElementById('key-alert').textContent.replace(/\s+/g, ' ').trim(),
    inputType: document.getElementById('api-key').type,
    inputValue: document.getElementById('api-key').value,
    labelFor: Array.from(document.querySelectorAll('label'))
      .filter((l) => l.htmlFor === 'api-key').map((l) => l.textContent.trim()),
    focused: document.activeElement.id,
    session: sessionStorage.getItem('resnetd.apiKey'),
    localKeys: Object.keys(localStorage),
    modelsLoaded: document.body.dataset.modelsLoaded || null,
    status: document.getElementById('status').textContent,
  }));
}

// What the page shows of the "why?" toggle and the map.
async function whyView(page) {
  return page.evaluate(() => {
    const cam = document.getElementById('cam'), why = document.getElementById('why');
    const prev = document.getElementById('preview');
    return {
      state: document.body.dataset.why || '',
      pressed: why.getAttribute('aria-pressed'),
      disabled: why.disabled,
      note: document.getElementById('why-note').textContent.replace(/\s+/g, ' ').trim(),
      camHidden: cam.hidden,
      camSize: [cam.naturalWidth, cam.naturalHeight],
      camAlt: cam.alt,
      previewSize: [prev.naturalWidth, prev.naturalHeight],
      box: ['left', 'top', 'width', 'height'].map((k) => parseFloat(cam.style[k])),
      camOnly: document.getElementById('stage').classList.contains('cam-only'),
    };
  });
}

// Presses "why?" with the keyboard and waits for the map; returns the view,
// the explain request's URL and status, and the sha256 of the RGB pixels the
// page shows (read back through a canvas).
async function showWhy(page, outDir, shot) {
  const resp = page.waitForResponse((r) => r.url().includes('/explain'), { timeout: 60000 });
  await page.focus('#why');
  await page.keyboard.press('Enter');
  const r = await resp;
  await page.waitForSelector('body[data-why="shown"], body[data-why="error"]', { timeout: 60000 });
  const view = await whyView(page);
  const rgba = await page.evaluate(() => {
    const cam = document.getElementById('cam');
    const c = document.createElement('canvas');
    c.width = cam.naturalWidth;
    c.height = cam.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(cam, 0, 0);
    return Array.from(g.getImageData(0, 0, c.width, c.height).data);
  });
  const rgb = Buffer.from(rgba.filter((_, i) => i % 4 !== 3));
  await page.screenshot({ path: path.join(outDir, shot), fullPage: true });
  return {
    view, url: r.url(), status: r.status(), type: r.headers()['content-type'],
    sha256: crypto.createHash('sha256').update(rgb).digest('hex'),
  };
}

async function predictions(page) {
  return page.$$eval('#predictions li', (lis) => lis.map((li) => ({
    label: li.querySelector('.label').textContent,
    index: Number(li.dataset.index),
    percent: li.querySelector('.prob').textContent,
    bar: li.querySelector('.bar > span').style.width,
  })));
}

async function authFlow(page, out, base, model, image, outDir, key) {
  out.api = []; // [path, Authorization sent] for every /v1 request
  page.on('request', async (r) => {
    const u = new URL(r.url());
    if (!u.pathname.startsWith('/v1/')) return;
    const i = out.api.push(null) - 1; // the slot keeps the order of the requests
    const h = await r.allHeaders();
    out.api[i] = [u.pathname, h.authorization || null];
  });
  const resp = await page.goto(base + '/', { waitUntil: 'load' });
  out.pageStatus = resp.status();
  out.csp = resp.headers()['content-security-policy'] || '';
  await page.waitForSelector('body[data-auth="needed"]', { timeout: 30000 });
  out.noKey = await keyView(page);
  await page.screenshot({ path: path.join(outDir, 'demo-key.png'), fullPage: true });

  // keyboard only: the field has the focus, type a wrong key, Enter
  await page.keyboard.type(key + '-wrong');
  await page.keyboard.press('Tab');
  out.afterInputTab = await page.evaluate(() => document.activeElement.id);
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Enter');
  await page.waitForSelector('body[data-auth="needed"][data-auth-fails="2"]', { timeout: 30000 });
  out.wrongKey = await keyView(page);
  await page.screenshot({ path: path.join(outDir, 'demo-key-wrong.png'), fullPage: true });

  // the right key, with the button this time
  await page.fill('#api-key', key);
  await page.click('#key-submit');
  await page.waitForSelector('body[data-models-loaded]', { timeout: 30000 });
  out.rightKey = await keyView(page);
  out.models = await page.$$eval('#model option', (os) => os.map((o) => o.value));
  await page.selectOption('#model', model);
  await page.setInputFiles('#file', image);
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]',
    { timeout: 60000 });
  out.state = await page.getAttribute('body', 'data-state');
  out.rows = await predictions(page);
  out.status = await page.textContent('#status');
  await page.screenshot({ path: path.join(outDir, 'demo-key-done.png'), fullPage: true });

  // a reload in the same tab keeps the key (sessionStorage): no prompt
  await page.reload({ waitUntil: 'load' });
  await page.waitForSelector('body[data-models-loaded]', { timeout: 30000 });
  out.reloaded = await keyView(page);

  // "Forget key" by keyboard: the key is gone and the prompt is back
  await page.focus('#forget-key');
  await page.keyboard.press('Enter');
  await page.waitForSelector('body[data-auth="needed"]', { timeout: 30000 });
  out.forgotten = await keyView(page);
  out.modelsAfterForget = await page.$$eval('#model option', (os) => os.map((o) => o.value));
  out.rowsAfterForget = (await predictions(page)).length;
}

// The page on a server without a key: models, keyboard, classify, an API error.
async function plainFlow(page, out, base, model, image, bad, outDir) {
  const resp = await page.goto(base + '/', { waitUntil: 'load' });
  out.pageStatus = resp.status();
  out.csp = resp.headers()['content-security-policy'] || '';
  await page.waitForSelector('body[data-models-loaded]', { timeout: 30000 });
  out.models = await page.$$eval('#model option', (os) => os.map((o) => o.value));
  out.keyPrompt = await keyView(page); // a server without a key: nothing of it shows

  // keyboard: Tab from the top reaches the model chooser, then the file picker
  out.tabOrder = [];
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('Tab');
    out.tabOrder.push(await page.evaluate(() => document.activeElement.id ||
      document.activeElement.tagName.toLowerCase()));
  }
  // choose the model with the keyboard when it is not the first one
  await page.focus('#model');
  await page.selectOption('#model', model);
  out.modelInfo = await page.textContent('#model-info');

  await page.setInputFiles('#file', image);
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]',
    { timeout: 60000 });
  out.state = await page.getAttribute('body', 'data-state');
  out.rows = await predictions(page);
  out.status = await page.textContent('#status');
  out.timing = await page.textContent('#timing');
  await page.screenshot({ path: path.join(outDir, 'demo.png'), fullPage: true });

  // "why?": the class activation map of the top-1 class over the picture, then off
  out.whyBefore = await whyView(page);
  out.why = await showWhy(page, outDir, 'demo-why.png');
  await page.click('#why');
  out.whyOff = await whyView(page);
  const second = process.env.DEMO_WHY_IMAGE;
  if (second) { // another model and a non-square picture: the map sits on the crop
    const [m2, img2] = [second.slice(0, second.indexOf(':')), second.slice(second.indexOf(':') + 1)];
    await page.selectOption('#model', m2);
    await page.setInputFiles('#file', img2);
    await page.waitForSelector('body[data-state="done"]', { timeout: 60000 });
    await page.waitForFunction(() => document.getElementById('preview').naturalWidth > 0);
    out.rows2 = await predictions(page);
    out.why2 = await showWhy(page, outDir, 'demo-why-2.png');
    await page.click('#why'); // off again for what follows
    await page.selectOption('#model', model);
  }

  // an API error is shown, not swallowed
  await page.setInputFiles('#file', bad);
  await page.waitForSelector('body[data-state="error"]', { timeout: 60000 });
  out.errorVisible = await page.isVisible('#error');
  out.errorTitle = await page.textContent('#error-title');
  out.errorDetail = await page.textContent('#error-detail');
  out.rowsAfterError = await page.$$eval('#predictions li', (lis) => lis.length);
  await page.screenshot({ path: path.join(outDir, 'demo-error.png'), fullPage: true });
}

async function main() {
  const [base, model, image, bad, outDir, key] = process.argv.slice(2);
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'resnetd-demo-profile-'));
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1000, height: 720 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-quic'],
  });
  const out = { requests: [], blocked: [], consoleErrors: [] };
  try {
    await ctx.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith(base + '/')) return route.continue();
      out.blocked.push(u);
      return route.abort();
    });
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('request', (r) => out.requests.push(r.method() + ' ' + r.url()));
    page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => out.consoleErrors.push(String(e)));
    if (key) await authFlow(page, out, base, model, image, outDir, key);
    else await plainFlow(page, out, base, model, image, bad, outDir);
  } finally {
    await ctx.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
