// resnetd demo page: lists the models (GET /v1/models), sends the chosen image
// to POST /v1/models/{name}/classify and draws the top 5. No dependencies, no
// external requests; the server-side time comes from the Server-Timing header.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const el = {
    model: $('model'), modelInfo: $('model-info'), file: $('file'), drop: $('drop'),
    previewWrap: $('preview-wrap'), preview: $('preview'), filename: $('filename'),
    status: $('status'), error: $('error'), errorTitle: $('error-title'),
    errorDetail: $('error-detail'), predictions: $('predictions'), timing: $('timing'),
  };
  const state = { file: null, models: [], seq: 0, previewUrl: null };

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

  async function loadModels() {
    let resp, body;
    try {
      resp = await fetch('/v1/models', { headers: { Accept: 'application/json' } });
      body = await readJson(resp);
    } catch (e) {
      showError('Cannot reach the server', String(e && e.message || e));
      setStatus('Not connected.');
      return;
    }
    if (!resp.ok || !body || !Array.isArray(body.models)) {
      const d = describeError(resp, body);
      showError(`Could not list the models (${d.title})`, d.detail);
      return;
    }
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
    el.model.disabled = body.models.length === 0;
    el.modelInfo.textContent = describeModel(currentModel());
    document.body.dataset.modelsLoaded = String(body.models.length);
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
    if (!file || !model) return;
    const seq = ++state.seq;
    clearError();
    el.predictions.textContent = '';
    el.timing.textContent = '';
    document.body.dataset.state = 'busy';
    setStatus(`Classifying with ${model}…`, true);
    const t0 = performance.now();
    let resp, body;
    try {
      resp = await fetch(`/v1/models/${encodeURIComponent(model)}/classify?top_k=5`, {
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
    if (!resp.ok || !body || !Array.isArray(body.predictions)) {
      const d = describeError(resp, body);
      showError(d.title, d.detail);
      setStatus('The server could not classify this image.');
      document.body.dataset.state = 'error';
      return;
    }
    render(body.predictions);
    const top = body.predictions[0];
    setStatus(top ? `${model}: ${top.label}` : `${model}: no prediction`);
    const srv = serverMs(resp);
    el.timing.textContent = srv !== null
      ? `Server time ${srv.toFixed(1)} ms (round trip ${rtt.toFixed(1)} ms)`
      : `Round trip ${rtt.toFixed(1)} ms (the server sent no Server-Timing)`;
    document.body.dataset.state = 'done';
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

  loadModels();
})();
