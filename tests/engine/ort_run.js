// Reference outputs from ONNX Runtime (CPU EP):
//   node ort_run.js MODEL.onnx IN1.npy OUT1.npy [IN2.npy OUT2.npy ...]
// Each input tensor feeds the model's first input; the first output is
// written as float32 .npy. One session serves every pair.
//   node ort_run.js --ranges RANGES.json MODEL.onnx IN1.npy [IN2.npy ...]
// runs every input and writes {output name: [min, max]} over all runs for
// every float output of the model (calibration of a model whose
// intermediate tensors were made outputs).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const b = fs.readFileSync(path);
  if (b.readUInt32BE(0) !== 0x934e554d) throw new Error(path + ': not .npy');
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const off = (major === 1 ? 10 : 12);
  const hdr = b.toString('latin1', off, off + hlen);
  if (!/'descr': *'<f4'/.test(hdr) || !/'fortran_order': *False/.test(hdr))
    throw new Error(path + ': need little-endian float32 C order');
  const shape = hdr.match(/'shape': *\(([^)]*)\)/)[1].split(',')
    .map(s => s.trim()).filter(s => s.length).map(Number);
  const count = shape.reduce((a, c) => a * c, 1);
  const data = new Float32Array(count);
  const start = off + hlen;
  for (let i = 0; i < count; i++) data[i] = b.readFloatLE(start + 4 * i);
  return { shape, data };
}

function writeNpy(path, shape, data) {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let hdr = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  const pad = (64 - ((10 + hdr.length + 1) % 64)) % 64;
  hdr += ' '.repeat(pad) + '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, hdr.length & 0xff, hdr.length >> 8]);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], 4 * i);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(hdr, 'latin1'), body]));
}

async function ranges(out, model, inputs) {
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  const r = {};
  for (const path of inputs) {
    const x = readNpy(path);
    const y = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) });
    for (const name of s.outputNames) {
      if (y[name].type !== 'float32') continue;
      let lo = Infinity, hi = -Infinity;
      for (const v of y[name].data) { if (v < lo) lo = v; if (v > hi) hi = v; }
      const old = r[name] || [Infinity, -Infinity];
      r[name] = [Math.min(old[0], lo), Math.max(old[1], hi)];
    }
  }
  fs.writeFileSync(out, JSON.stringify(r));
}

(async () => {
  if (process.argv[2] === '--ranges') {
    const [out, model, ...inputs] = process.argv.slice(3);
    return ranges(out, model, inputs);
  }
  const [model, ...pairs] = process.argv.slice(2);
  if (!model || pairs.length === 0 || pairs.length % 2) {
    console.error('usage: node ort_run.js MODEL.onnx IN.npy OUT.npy [IN.npy OUT.npy ...]');
    process.exit(2);
  }
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  for (let i = 0; i < pairs.length; i += 2) {
    const x = readNpy(pairs[i]);
    const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) });
    const y = r[s.outputNames[0]];
    writeNpy(pairs[i + 1], y.dims, y.data);
  }
})().catch(e => { console.error('ort_run: ' + e.message); process.exit(1); });
