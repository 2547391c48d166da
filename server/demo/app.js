// resnetd demo page: lists the models (GET /v1/models), sends the chosen image
// to POST /v1/models/{name}/classify and draws the top 5. No dependencies, no
// external requests; the server-side time comes from the Server-Timing header.
// When the server has an api_key, /v1 answers 401: the page then asks for the
// key, keeps it in sessionStorage (this tab only) and sends it as
// "Authorization: Bearer <key>" on every API request.
// The "why?" toggle asks POST /v1/models/{name}/explain?format=png for the
// class activation map of the top-1 class and lays it over the picture where
// the model's centre crop lies (the PNG is the crop as the model saw it).
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const el = {
    model: $('model'), modelInfo: $('model-info'), file: $('file'), drop: $('drop'),
    previewWrap: $('preview-wrap'), preview: $('preview'), filename: $('filename'),
    status: $('status'), error: $('error'), errorTitle: $('error-title'),
    errorDetail: $('error-detail'), predictions: $('predictions'), timing: $('timing'),
    keyPanel: $('key-panel'), keyForm: $('key-form'), keyInput: $('api-key'),
    keyAlertTitle: $('key-alert-title'), keyAlertDetail: $('key-alert-detail'),
    keyStatus: $('key-status'), forgetKey: $('forget-key'),
    stage: $('stage'), cam: $('cam'), why: $('why'), whyNote: $('why-note'),
  };
  const WHY_HINT = 'Shows where the model looked for its answer.';
  const KEY_ITEM = 'resnetd.apiKey';
  const state = {
    file: null, models: [], seq: 0, modelsSeq: 0, previewUrl: null, key: storedKey(), fails: 0,
    top: null, camUrl: null, whySeq: 0,
  };

  // sessionStorage may be unavailable (storage disabled): the key then lives
  // in this page only.
  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_ITEM) || '';
    } catch (e) {
      return '';
    }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_ITEM, key);
      else sessionStorage.removeItem(KEY_ITEM);
    } catch (e) { /* kept in memory only */ }
  }

  // fetch() with the API key, when there is one.
  function apiFetch(url, opts) {
    const headers = new Headers((opts && opts.headers) || {});
    if (state.key) headers.set('Authorization', `Bearer ${state.key}`);
    return fetch(url, Object.assign({}, opts, { headers }));
  }

  function setStatus(text, busy) {
    el.status.textContent = text;
    el.status.classList.toggle('busy', !!busy);
  }

  function showError(title, detail) {
    el.errorTitle.textContent = title;
    el.errorDetail.textContent = detail || '';
    el.error.hidden = false;
  }

  function clearError() {
    el.error.hidden = true;
  }

  // The body as JSON, or null when it is not JSON.
  async function readJson(resp) {
    const text = await resp.text();
    try {
      return JSON.parse(text);
    } catch (e) {
      return { _text: text };
    }
  }

  // "HTTP 415 unsupported_image: ..." from any of the server's error shapes.
  function describeError(resp, body) {
    let code = '', message = '';
    if (body && typeof body.error === 'object' && body.error) {
      code = body.error.code || '';
      message = body.error.message || '';
    } else if (body && typeof body.error === 'string') {
      message = body.error;
    } else if (body && body._text) {
      message = body._text.slice(0, 300);
    }
    const head = `HTTP ${resp.status}${resp.statusText ? ' ' + resp.statusText : ''}`;
    return { title: code ? `${head}: ${code}` : head, detail: message };
  }

  function serverMs(resp) {
    const h = resp.headers.get('Server-Timing');
    const m = h && /dur=([0-9.]+)/.exec(h);
    return m ? parseFloat(m[1]) : null;
  }

  function describeModel(m) {
    if (!m) return '';
    const shape = Array.isArray(m.input_shape) ? m.input_shape.join('×') : '?';
    return `input ${shape}, ${m.classes} classes${m.labels ? '' : ' (no labels: class indices)'}` +
      `, batches up to ${m.max_batch}`;
  }

  // The server answered 401: show the key field with the server's reason.
  // sentKey: a key went with the request (so it is wrong, or no longer valid).
  function askForKey(resp, body, sentKey) {
    const d = describeError(resp, body);
    if (sentKey) {
      state.key = '';
      storeKey('');
    }
    el.keyAlertTitle.textContent = sentKey ? 'The API key was not accepted'
      : 'This server needs an API key';
    el.keyAlertDetail.textContent = `${d.title}${d.detail ? ` (${d.detail})` : ''}. ` +
      (sentKey ? 'Check the key and enter it again.'
        : 'Enter it to list the models and classify images.');
    el.keyStatus.hidden = true;
    if (!state.models.length) resetModels(); // the chooser says what it waits for
    el.keyPanel.hidden = false;
    document.body.dataset.auth = 'needed';
    document.body.dataset.authFails = String(++state.fails);
    setStatus('Waiting for the API key.');
    if (document.activeElement !== el.keyInput) el.keyInput.focus();
    if (sentKey) el.keyInput.select();
  }

  function keyAccepted() {
    document.body.dataset.auth = state.key ? 'key' : 'open';
    el.keyPanel.hidden = true;
    el.keyStatus.hidden = !state.key;
    if (state.key) {
      storeKey(state.key);
      el.keyInput.value = ''; // not left in the DOM
    }
  }

  async function loadModels() {
    const seq = ++state.modelsSeq, sentKey = !!state.key;
    let resp, body;
    try {
      resp = await apiFetch('/v1/models', { headers: { Accept: 'application/json' } });
      body = await readJson(resp);
    } catch (e) {
      if (seq !== state.modelsSeq) return;
      showError('Cannot reach the server', String(e && e.message || e));
      setStatus('Not connected.');
      return;
    }
    if (seq !== state.modelsSeq) return; // a newer key superseded this one
    if (resp.status === 401) {
      askForKey(resp, body, sentKey);
      return;
    }
    if (!resp.ok || !body || !Array.isArray(body.models)) {
      const d = describeError(resp, body);
      showError(`Could not list the models (${d.title})`, d.detail);
      return;
    }
    keyAccepted();
    clearError();
    const previous = el.model.value;
    state.models = body.models;
    el.model.textContent = '';
    for (const m of body.models) {
      const o = document.createElement('option');
      o.value = m.name;
      o.textContent = m.name;
      el.model.appendChild(o);
    }
    const wanted = new URLSearchParams(location.search).get('model');
    if (wanted && body.models.some((m) => m.name === wanted)) el.model.value = wanted;
    if (previous && body.models.some((m) => m.name === previous)) el.model.value = previous;
    el.model.disabled = body.models.length === 0;
    el.modelInfo.textContent = describeModel(currentModel());
    document.body.dataset.modelsLoaded = String(body.models.length);
    if (state.file) classify(); // an image chosen before the key was given
    else setStatus('Pick an image to classify it.');
  }

  // Back to "no models" (the key was forgotten): nothing of the last answer stays.
  function resetModels() {
    state.models = [];
    el.model.textContent = '';
    const o = document.createElement('option');
    o.textContent = 'Enter the API key to list the models';
    el.model.appendChild(o);
    el.model.disabled = true;
    el.modelInfo.textContent = '';
    el.predictions.textContent = '';
    el.timing.textContent = '';
    state.top = null;
    hideCam();
    el.why.disabled = true;
    delete document.body.dataset.modelsLoaded;
    delete document.body.dataset.state;
  }

  function currentModel() {
    return state.models.find((m) => m.name === el.model.value);
  }

  function render(preds) {
    el.predictions.textContent = '';
    for (const p of preds) {
      const li = document.createElement('li');
      const pct = Math.max(0, Math.min(1, Number(p.probability) || 0)) * 100;
      li.dataset.index = p.index;
      li.setAttribute('aria-label', `${p.label}: ${pct.toFixed(1)} percent`);
      const label = document.createElement('span');
      label.className = 'label';
      label.textContent = p.label;
      label.title = `${p.label} (class ${p.index})`;
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.setAttribute('aria-hidden', 'true');
      const fill = document.createElement('span');
      fill.style.width = `${pct.toFixed(2)}%`;
      bar.appendChild(fill);
      const prob = document.createElement('span');
      prob.className = 'prob';
      prob.textContent = `${pct.toFixed(1)}%`;
      li.append(label, bar, prob);
      el.predictions.appendChild(li);
    }
  }

  async function classify() {
    const file = state.file, model = el.model.value;
    if (!file || !model || !state.models.length) return;
    const sentKey = !!state.key;
    const seq = ++state.seq;
    clearError();
    el.predictions.textContent = '';
    el.timing.textContent = '';
    state.top = null;
    hideCam();
    el.why.disabled = true;
    document.body.dataset.state = 'busy';
    setStatus(`Classifying with ${model}…`, true);
    const t0 = performance.now();
    let resp, body;
    try {
      resp = await apiFetch(`/v1/models/${encodeURIComponent(model)}/classify?top_k=5`, {
        method: 'POST', body: file,
        headers: { 'Content-Type': file.type || 'application/octet-stream' },
      });
      body = await readJson(resp);
    } catch (e) {
      if (seq !== state.seq) return;
      showError('The request failed', String(e && e.message || e));
      setStatus('Failed.');
      document.body.dataset.state = 'error';
      return;
    }
    if (seq !== state.seq) return; // a newer image or model superseded this one
    const rtt = performance.now() - t0;
    if (resp.status === 401) { // the key was withdrawn or changed on the server
      askForKey(resp, body, sentKey);
      setStatus('The server needs the API key to classify this image.');
      document.body.dataset.state = 'error';
      return;
    }
    if (!resp.ok || !body || !Array.isArray(body.predictions)) {
      const d = describeError(resp, body);
      showError(d.title, d.detail);
      setStatus('The server could not classify this image.');
      document.body.dataset.state = 'error';
      return;
    }
    render(body.predictions);
    const top = body.predictions[0];
    state.top = top || null;
    el.why.disabled = !top;
    setStatus(top ? `${model}: ${top.label}` : `${model}: no prediction`);
    const srv = serverMs(resp);
    el.timing.textContent = srv !== null
      ? `Server time ${srv.toFixed(1)} ms (round trip ${rtt.toFixed(1)} ms)`
      : `Round trip ${rtt.toFixed(1)} ms (the server sent no Server-Timing)`;
    document.body.dataset.state = 'done';
    if (top && whyOn()) explain();
  }

  function whyOn() {
    return el.why.getAttribute('aria-pressed') === 'true';
  }

  function setWhyNote(text, state) {
    el.whyNote.textContent = text;
    document.body.dataset.why = state;
  }

  // Removes the map from the picture (the toggle keeps its state).
  function hideCam() {
    state.whySeq++; // an explain request in flight is dropped
    el.cam.hidden = true;
    el.cam.removeAttribute('src');
    if (state.camUrl) URL.revokeObjectURL(state.camUrl);
    state.camUrl = null;
    el.stage.classList.remove('explained');
    setWhyNote(WHY_HINT, 'off');
  }

  // Where the model's input lies in the picture, in percent of it:
  // torchvision's Resize(shorter side = resize) then CenterCrop(crop).
  function cropBox(m, w, h) {
    const inp = m && m.config && m.config.input;
    const shape = m && m.input_shape;
    if (!inp || !Array.isArray(shape) || !w || !h) return null;
    const ch = shape[1], cw = shape[2], s = inp.resize / Math.min(w, h);
    const rw = w <= h ? inp.resize : Math.floor(inp.resize * w / h);
    const rh = h <= w ? inp.resize : Math.floor(inp.resize * h / w);
    // torchvision rounds the crop's offset half to even (Python's round)
    const even = (x) => (Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : Math.round(x));
    const left = even((rw - cw) / 2), top = even((rh - ch) / 2);
    return {
      left: left / s / w * 100, top: top / s / h * 100,
      width: cw / s / w * 100, height: ch / s / h * 100,
    };
  }

  function placeCam() {
    const box = el.preview.hidden ? null
      : cropBox(currentModel(), el.preview.naturalWidth, el.preview.naturalHeight);
    el.stage.classList.toggle('cam-only', !box); // no picture to lay it on: the map alone
    for (const k of ['left', 'top', 'width', 'height']) {
      el.cam.style[k] = box ? `${box[k].toFixed(4)}%` : '';
    }
    el.cam.classList.toggle('small', el.cam.naturalWidth < 96);
  }

  async function explain() {
    const file = state.file, model = el.model.value, top = state.top;
    if (!file || !model || !top) return;
    hideCam();
    const seq = state.whySeq, sentKey = !!state.key;
    setWhyNote(`Computing where ${model} sees “${top.label}”…`, 'loading');
    let resp, blob = null, body = null;
    try {
      resp = await apiFetch(
        `/v1/models/${encodeURIComponent(model)}/explain?format=png&class=${top.index}`, {
          method: 'POST', body: file,
          headers: { 'Content-Type': file.type || 'application/octet-stream' },
        });
      if (resp.ok) blob = await resp.blob();
      else body = await readJson(resp);
    } catch (e) {
      if (seq !== state.whySeq) return;
      setWhyNote(`The request failed: ${String(e && e.message || e)}`, 'error');
      return;
    }
    if (seq !== state.whySeq || !whyOn()) return; // superseded, or switched off
    if (resp.status === 401) {
      askForKey(resp, body, sentKey);
      setWhyNote('The server needs the API key to explain this image.', 'error');
      return;
    }
    if (!blob) {
      const d = describeError(resp, body);
      setWhyNote(`${d.title}${d.detail ? ': ' + d.detail : ''}`, 'error');
      return;
    }
    state.camUrl = URL.createObjectURL(blob);
    el.cam.onload = () => {
      if (seq !== state.whySeq) return;
      placeCam();
      el.cam.hidden = false;
      el.stage.classList.add('explained');
      setWhyNote(`Where ${model} sees “${top.label}”: red weighs most for this class ` +
        '(class activation map of the area the model saw).', 'shown');
    };
    el.cam.onerror = () => {
      if (seq === state.whySeq) setWhyNote('The browser cannot show the map.', 'error');
    };
    el.cam.alt = `Class activation map for ${top.label}, over the part of the picture the ` +
      'model saw';
    el.cam.src = state.camUrl;
  }

  function useFile(file) {
    if (!file) return;
    state.file = file;
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = URL.createObjectURL(file);
    el.preview.hidden = true; // shown once it loads
    el.preview.src = state.previewUrl;
    el.filename.textContent = `${file.name || 'pasted image'} · ${(file.size / 1024).toFixed(1)} KiB`;
    el.previewWrap.hidden = false;
    classify();
  }

  // a file the browser cannot show (or a tiny 28x28 one) still gets a sensible preview
  el.preview.addEventListener('error', () => { el.preview.hidden = true; });
  el.preview.addEventListener('load', () => {
    el.preview.hidden = false;
    el.preview.classList.toggle('small', el.preview.naturalWidth < 96);
    if (!el.cam.hidden) placeCam();
  });
  el.why.addEventListener('click', () => {
    const on = !whyOn();
    el.why.setAttribute('aria-pressed', String(on));
    if (on) explain();
    else hideCam();
  });
  el.file.addEventListener('change', () => useFile(el.file.files[0]));
  el.model.addEventListener('change', () => {
    el.modelInfo.textContent = describeModel(currentModel());
    classify();
  });
  for (const t of ['dragenter', 'dragover']) {
    el.drop.addEventListener(t, (e) => {
      e.preventDefault();
      el.drop.classList.add('over');
    });
  }
  for (const t of ['dragleave', 'drop']) {
    el.drop.addEventListener(t, () => el.drop.classList.remove('over'));
  }
  el.drop.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) useFile(f);
  });
  // a file dropped outside the zone must not replace the page
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  document.addEventListener('paste', (e) => {
    const items = e.clipboardData ? Array.from(e.clipboardData.files) : [];
    if (items.length) useFile(items[0]);
  });

  el.keyForm.addEventListener('submit', (e) => {
    e.preventDefault(); // handled here: no navigation (the CSP has form-action 'none')
    const key = el.keyInput.value.trim();
    // a header value must be printable ASCII; say so instead of a fetch TypeError
    if (!/^[\x20-\x7e]+$/.test(key)) {
      el.keyAlertTitle.textContent = key ? 'This is not a valid API key' : 'Enter the API key';
      el.keyAlertDetail.textContent = key
        ? 'An API key is printable ASCII (letters, digits, punctuation).'
        : 'The field is empty.';
      el.keyInput.focus();
      return;
    }
    state.key = key;
    document.body.dataset.auth = 'checking';
    setStatus('Checking the API key…', true);
    loadModels();
  });
  el.forgetKey.addEventListener('click', () => {
    state.key = '';
    storeKey('');
    state.seq++; // drop any classification still in flight
    resetModels();
    clearError();
    el.keyStatus.hidden = true;
    loadModels(); // on a server with a key: 401, so the key field again
  });

  loadModels();
})();
