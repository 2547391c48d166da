// Every output of a model from ONNX Runtime (CPU EP), for test_embed.py:
//   node ort_outputs.js MODEL.onnx IN.npy OUTDIR
// feeds IN.npy (float32) to the model's first input and writes each float
// output as OUTDIR/<k>.npy, k its position, and OUTDIR/names.json (the
// output names in that order; non-float outputs are null).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function readNpy(p) {
  const b = fs.readFileSync(p);
  if (b.readUInt32BE(0) !== 0x934e554d) throw new Error(p + ': not .npy');
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const off = major === 1 ? 10 : 12;
  const hdr = b.toString('latin1', off, off + hlen);
  if (!/'descr': *'<f4'/.test(hdr) || !/'fortran_order': *False/.test(hdr))
    throw new Error(p + ': need little-endian float32 C order');
  const shape = hdr.match(/'shape': *\(([^)]*)\)/)[1].split(',')
    .map(s => s.trim()).filter(s => s.length).map(Number);
  const count = shape.reduce((a, c) => a * c, 1);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = b.readFloatLE(off + hlen + 4 * i);
  return { shape, data };
}

function writeNpy(p, shape, data) {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let hdr = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  hdr += ' '.repeat((64 - ((10 + hdr.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, hdr.length & 0xff, hdr.length >> 8]);
  const body = Buffer.from(Float32Array.from(data).buffer);
  fs.writeFileSync(p, Buffer.concat([pre, Buffer.from(hdr, 'latin1'), body]));
}

(async () => {
  const [model, input, outdir] = process.argv.slice(2);
  if (!outdir) {
    console.error('usage: node ort_outputs.js MODEL.onnx IN.npy OUTDIR');
    process.exit(2);
  }
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  const x = readNpy(input);
  const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) });
  const names = [];
  s.outputNames.forEach((name, k) => {
    const y = r[name];
    if (y.type !== 'float32') { names.push(null); return; }
    names.push(name);
    writeNpy(path.join(outdir, `${k}.npy`), y.dims, y.data);
  });
  fs.writeFileSync(path.join(outdir, 'names.json'), JSON.stringify(names));
})().catch(e => { console.error('ort_outputs: ' + e.message); process.exit(1); });
