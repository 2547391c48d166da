// ort_top1.js — ONNX Runtime top-1 for .npy input batches.
//   node ort_top1.js MODEL.onnx A.npy [B.npy ...]
// Prints one JSON line per file: {"file", "top1": [...], "margin": [...]} where
// margin is the logit gap between the best and second-best class.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not .npy`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const off = (major === 1 ? 10 : 12) + hlen;
  const header = b.toString('latin1', major === 1 ? 10 : 12, off);
  if (!header.includes("'<f4'")) throw new Error(`${file}: not float32`);
  const shape = header.match(/\(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const data = new Float32Array(b.buffer.slice(b.byteOffset + off, b.byteOffset + b.length));
  return {shape, data};
}

async function main() {
  const [model, ...files] = process.argv.slice(2);
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: 1});
  for (const f of files) {
    const {shape, data} = readNpy(f);
    const out = await s.run({[s.inputNames[0]]: new ort.Tensor('float32', data, shape)});
    const y = out[s.outputNames[0]];
    const n = y.dims[0], k = y.dims[1];
    const top1 = [], margin = [];
    for (let i = 0; i < n; i++) {
      const row = Array.from(y.data.subarray(i * k, (i + 1) * k));
      const order = row.map((v, j) => [v, j]).sort((a, b) => b[0] - a[0]);
      top1.push(order[0][1]);
      margin.push(order[0][0] - order[1][0]);
    }
    console.log(JSON.stringify({file: f, top1, margin}));
  }
}
main().catch((e) => { console.error(e.message); process.exit(1); });
