// ONNX Runtime (CPU EP) throughput, the peer of `resnetd bench`:
//   node bench/ort_bench.js MODEL.onnx [BATCH=1] [THREADS=2] [SECONDS=10]
// Random float32 input of the model's first input shape (a dynamic batch
// dimension takes BATCH; other dynamic dimensions are 224); prints one line
// with img/s=... and ms/batch=... (bench/*_vs_ort.sh parse img/s=).
'use strict';
const ort = require('onnxruntime-node');

async function main() {
  const [file, b = '1', t = '2', s = '10'] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node ort_bench.js MODEL.onnx [BATCH] [THREADS] [SECONDS]');
    process.exit(2);
  }
  const batch = parseInt(b, 10), threads = parseInt(t, 10), seconds = parseFloat(s);
  const sess = await ort.InferenceSession.create(file, {
    intraOpNumThreads: threads, interOpNumThreads: 1,
    graphOptimizationLevel: 'all', executionMode: 'sequential' });
  const name = sess.inputNames[0];
  let dims = [batch, 3, 224, 224];
  const meta = sess.inputMetadata && sess.inputMetadata[0];
  if (meta && Array.isArray(meta.shape) && meta.shape.length)
    dims = meta.shape.map((d, i) => (typeof d === 'number' && d > 0 && i > 0 ? d : i === 0 ? batch : 224));
  const n = dims.reduce((a, c) => a * c, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random();
  const feeds = { [name]: new ort.Tensor('float32', data, dims) };
  for (let i = 0; i < 3; i++) await sess.run(feeds); // warm-up
  let runs = 0;
  const t0 = process.hrtime.bigint();
  let dt = 0;
  while (dt < seconds) {
    await sess.run(feeds);
    runs++;
    dt = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  const ver = require('onnxruntime-node/package.json').version;
  console.log(`ort ${ver} ${file.split('/').pop()} batch=${batch} threads=${threads} ` +
              `img/s=${(runs * batch / dt).toFixed(2)} ms/batch=${(dt / runs * 1000).toFixed(2)}`);
}
main().catch(e => { console.error(e.message || e); process.exit(1); });
