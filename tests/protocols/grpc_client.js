// A second real gRPC client for tests/protocols/test_grpc_clients.py: npm's
// @grpc/grpc-js with @grpc/proto-loader (tests/node_modules), loading the
// repository's .proto at run time.
//
// usage: node grpc_client.js SPEC.json OUT.json
// SPEC: {"proto": path, "target": "127.0.0.1:PORT", "ca": PEM path (TLS) or absent,
//        "parallel": bool (all calls at once on one channel),
//        "calls": [{"method": "ModelInfer", "request": {...}, "metadata": {k: v},
//                   "deadline_ms": n}]}
// Bytes fields are {"$b64": "..."} in SPEC and OUT. OUT: [{"code", "details", "response"}]
// in call order (code 0 = OK; response null on error).
"use strict";
const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

function decode(v) {
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === "object") {
    if (typeof v.$b64 === "string") return Buffer.from(v.$b64, "base64");
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = decode(x);
    return o;
  }
  return v;
}

function encode(v) {
  if (Buffer.isBuffer(v)) return { $b64: v.toString("base64") };
  if (Array.isArray(v)) return v.map(encode);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = encode(x);
    return o;
  }
  return v;
}

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const def = protoLoader.loadSync(spec.proto, {
    keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
    includeDirs: [path.dirname(spec.proto)],
  });
  const pkg = grpc.loadPackageDefinition(def);
  const creds = spec.ca ? grpc.credentials.createSsl(fs.readFileSync(spec.ca))
                        : grpc.credentials.createInsecure();
  const client = new pkg.inference.GRPCInferenceService(spec.target, creds,
                                                        { "grpc.enable_http_proxy": 0 });
  const one = (c) => new Promise((resolve) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(c.metadata || {})) md.add(k, v);
    const opts = c.deadline_ms ? { deadline: Date.now() + c.deadline_ms } : {};
    client[c.method](decode(c.request || {}), md, opts, (err, resp) => {
      if (err) resolve({ code: err.code, details: err.details, response: null });
      else resolve({ code: 0, details: "", response: encode(resp) });
    });
  });
  let out;
  if (spec.parallel) {
    out = await Promise.all(spec.calls.map(one));
  } else {
    out = [];
    for (const c of spec.calls) out.push(await one(c));
  }
  client.close();
  fs.writeFileSync(process.argv[3], JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
