// ort_check.js — ONNX Runtime as the independent reference for the bundled
// Fashion-MNIST model.
//
//   node ort_check.js MODEL_DIR DATA_DIR [--min-accuracy A] [--min-agreement G]
//                     [--first N --write-input IN.npy --write-logits OUT.npy]
//
// Reads the 10,000 test images (idx, gzip) from DATA_DIR, normalises them with
// MODEL_DIR/config.json ((pixel/scale - mean[0]) / std[0], one gray channel),
// runs MODEL_DIR/model.onnx with ONNX Runtime (batches of 500) and prints one
// JSON line: {"images", "accuracy", "agree_with_pytorch", "max_abs_logit"}
// where agree_with_pytorch compares the argmax with
// MODEL_DIR/test_predictions.txt. With --first N it also writes the first N
// normalised images as [N,1,28,28] and ONNX Runtime's logits [N,10] as .npy,
// for comparing `resnetd infer` with ONNX Runtime. Exits 1 when accuracy is
// below A (default 0.93) or agreement below G (default 0.999).
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const ort = require('onnxruntime-node');

function readIdx(file) {
  const b = zlib.gunzipSync(fs.readFileSync(file));
  if (b[0] !== 0 || b[1] !== 0 || b[2] !== 8) throw new Error(`${file}: not a ubyte idx file`);
  const nd = b[3];
  const dims = [];
  for (let i = 0; i < nd; i++) dims.push(b.readUInt32BE(4 + 4 * i));
  return {dims, data: b.subarray(4 + 4 * nd)};
}

function writeNpy(file, shape, f32) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${
      shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'),
                                        Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength)]));
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 2) {
    console.error('usage: node ort_check.js MODEL_DIR DATA_DIR [--first N --write-input IN.npy --write-logits OUT.npy]');
    process.exit(2);
  }
  const [modelDir, dataDir] = args;
  const opt = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const first = Number(opt('--first') || 0);
  const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  const scale = cfg.input.scale, mean = cfg.input.mean[0], std = cfg.input.std[0];
  const imgs = readIdx(path.join(dataDir, 't10k-images-idx3-ubyte.gz'));
  const labels = readIdx(path.join(dataDir, 't10k-labels-idx1-ubyte.gz')).data;
  const n = imgs.dims[0], hw = imgs.dims[1] * imgs.dims[2];
  const preds = fs.readFileSync(path.join(modelDir, 'test_predictions.txt'), 'utf8').trim();
  if (preds.length !== n) throw new Error(`test_predictions.txt has ${preds.length} entries, want ${n}`);

  const x = new Float32Array(n * hw);
  for (let i = 0; i < n * hw; i++) x[i] = (imgs.data[i] / scale - mean) / std;
  const sess = await ort.InferenceSession.create(path.join(modelDir, 'model.onnx'),
                                                 {intraOpNumThreads: 1});
  const inName = sess.inputNames[0], outName = sess.outputNames[0];
  const B = 500;
  let correct = 0, agree = 0, maxAbs = 0;
  const logitsFirst = first ? new Float32Array(first * 10) : null;
  for (let s = 0; s < n; s += B) {
    const m = Math.min(B, n - s);
    const t = new ort.Tensor('float32', x.subarray(s * hw, (s + m) * hw), [m, 1, imgs.dims[1], imgs.dims[2]]);
    const out = (await sess.run({[inName]: t}))[outName].data;
    const k = out.length / m;
    for (let i = 0; i < m; i++) {
      let best = 0;
      for (let c = 0; c < k; c++) {
        const v = out[i * k + c];
        maxAbs = Math.max(maxAbs, Math.abs(v));
        if (v > out[i * k + best]) best = c;
        if (logitsFirst && s + i < first) logitsFirst[(s + i) * k + c] = v;
      }
      if (best === labels[s + i]) correct++;
      if (best === Number(preds[s + i])) agree++;
    }
  }
  if (first) {
    writeNpy(opt('--write-input'), [first, 1, imgs.dims[1], imgs.dims[2]], x.subarray(0, first * hw));
    writeNpy(opt('--write-logits'), [first, 10], logitsFirst);
  }
  console.log(JSON.stringify({images: n, accuracy: correct / n, agree_with_pytorch: agree / n,
                              max_abs_logit: maxAbs}));
  const minAcc = Number(opt('--min-accuracy') || 0.93), minAgree = Number(opt('--min-agreement') || 0.999);
  if (correct / n < minAcc || agree / n < minAgree) {
    console.error(`ort_check: accuracy ${correct / n} (min ${minAcc}), agreement with PyTorch ${
        agree / n} (min ${minAgree})`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(`ort_check: ${e.message}`);
  process.exit(1);
});
