// ONNX Runtime's per-node profile of one model, the peer of
// bench/layer_profile.py's oneDNN side:
//   node bench/ort_profile.js MODEL.onnx [BATCH=1] [THREADS=2] [RUNS=20] OUT.json
// Runs 3 warm-up runs, then RUNS profiled runs (enableProfiling), and writes
// ONNX Runtime's trace (Chrome trace JSON: one "Node" event per kernel run,
// dur in microseconds, args.op_name and the input shapes) to OUT.json.
'use strict';
const ort = require('onnxruntime-node');
const fs = require('fs');

async function main() {
  const [file, b = '1', t = '2', r = '20', out] = process.argv.slice(2);
  if (!file || !out) {
    console.error('usage: node ort_profile.js MODEL.onnx BATCH THREADS RUNS OUT.json');
    process.exit(2);
  }
  const batch = parseInt(b, 10), threads = parseInt(t, 10), runs = parseInt(r, 10);
  const mk = async (prof) => ort.InferenceSession.create(file, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionMode: 'sequential', enableProfiling: prof,
    profileFilePrefix: out + '.tmp' });
  const sess = await mk(true);
  const name = sess.inputNames[0];
  const dims = [batch, 3, 224, 224];
  const data = new Float32Array(dims.reduce((a, c) => a * c, 1));
  for (let i = 0; i < data.length; i++) data[i] = Math.random();
  const feeds = { [name]: new ort.Tensor('float32', data, dims) };
  for (let i = 0; i < 3 + runs; i++) await sess.run(feeds);
  await sess.endProfiling(); // writes PREFIX_<date>.json; the name is not returned
  const dir = require('path').dirname(out), base = require('path').basename(out) + '.tmp';
  const f = fs.readdirSync(dir).filter(x => x.startsWith(base)).sort().pop();
  if (!f) throw new Error('ONNX Runtime wrote no profile');
  fs.renameSync(require('path').join(dir, f), out);
  console.log(`ort ${require('onnxruntime-node/package.json').version} profile of ${3 + runs} runs -> ${out}`);
}
main().catch(e => { console.error(e.message || e); process.exit(1); });
