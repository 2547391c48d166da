#!/usr/bin/env python3
"""Seeds for fuzz_grpc captured from a real client library: python3-grpcio
(gRPC's C core: its own SETTINGS, WINDOW_UPDATEs, Huffman-coded HPACK with a
dynamic table, user-agent and grpc-* metadata), beside make_grpc_corpus.py's
python3-h2 conversations.

    /usr/bin/python3 tests/fuzz/make_grpc_seeds.py RESNETD_BINARY [OUT_DIR]

Starts `resnetd serve --grpc-port 0` with fuzz_grpc's model ("m":
corpus/onnx/res_gray8.onnx, input "x" 1x8x8, output "y"), puts a TCP proxy in
front of the gRPC port and makes grpcio calls through it, one channel (one
connection) per exchange: every served RPC, FP32 raw and typed, BYTES images
(PNG, JPEG, WebP) raw and typed, classification, metadata (bearer token,
x-request-id, a deadline: grpc-timeout), an unknown model. Each file
OUT_DIR/grpcio_<exchange> (default tests/fuzz/corpus/grpc) is everything
the client wrote on that connection: the bytes a server reads.
"""

import io
import json
import os
import shutil
import socket
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import grpc_kserve as gk  # noqa: E402

import grpc  # noqa: E402
import numpy as np  # noqa: E402


def small_image(i, fmt):
    from PIL import Image
    rng = np.random.default_rng(i)
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (12 + i, 10 + 2 * i, 3), np.uint8)).save(b, fmt)
    return b.getvalue()


class Proxy:
    """127.0.0.1:port -> upstream; records what each client connection sent."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.captures = []
        self.threads = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            rec = bytearray()
            self.captures.append(rec)
            for a, b, r in ((c, u, rec), (u, c, None)):
                t = threading.Thread(target=self._pump, args=(a, b, r), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pump(a, b, rec):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if rec is not None:
                    rec += d
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.ls.close()
        for t in self.threads:
            t.join(timeout=5)


def main():
    binary = os.path.abspath(sys.argv[1])
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "corpus", "grpc")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="grpc-seeds-") as tmp:
        pb2, pb2_grpc = gk.stubs(os.path.join(tmp, "stubs"))
        m = os.path.join(tmp, "m")
        os.makedirs(m)
        shutil.copy(os.path.join(HERE, "corpus", "onnx", "res_gray8.onnx"),
                    os.path.join(m, "model.onnx"))
        with open(os.path.join(m, "config.json"), "w") as f:
            json.dump({"name": "m", "input": {"color": "gray", "resize": 8, "crop": 8,
                                              "scale": 255.0, "mean": [0.5], "std": [0.5]},
                       "max_batch": 8}, f)
        srv = gk.GrpcServer(binary, ["--model", m])
        try:
            proxy = Proxy(srv.grpc_port)
            x = np.random.default_rng(1).standard_normal((2, 1, 8, 8)).astype(np.float32)
            imgs = [small_image(i, f) for i, f in enumerate(["PNG", "JPEG", "WEBP"])]

            def infer_fp32(typed):
                r = pb2.ModelInferRequest(model_name="m", id="seed")
                t = r.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
                if typed:
                    t.contents.fp32_contents.extend(x.ravel().tolist())
                else:
                    r.raw_input_contents.append(x.tobytes())
                return r

            def infer_images(k=0, typed=False):
                r = pb2.ModelInferRequest(model_name="m")
                t = r.inputs.add(name="image", datatype="BYTES", shape=[3, 1])
                if typed:
                    t.contents.bytes_contents.extend(imgs)
                else:
                    r.raw_input_contents.append(b"".join(len(b).to_bytes(4, "little") + b
                                                         for b in imgs))
                if k:
                    o = r.outputs.add(name="y")
                    o.parameters["classification"].int64_param = k
                r.parameters["timeout"].int64_param = 5000000
                return r

            calls = [
                ("server_live", "ServerLive", pb2.ServerLiveRequest(), ()),
                ("server_ready", "ServerReady", pb2.ServerReadyRequest(), ()),
                ("model_ready", "ModelReady", pb2.ModelReadyRequest(name="m", version="1"), ()),
                ("server_metadata", "ServerMetadata", pb2.ServerMetadataRequest(), ()),
                ("model_metadata", "ModelMetadata", pb2.ModelMetadataRequest(name="m"), ()),
                ("infer_fp32_raw", "ModelInfer", infer_fp32(False), ()),
                ("infer_fp32_typed", "ModelInfer", infer_fp32(True), ()),
                ("infer_images_raw", "ModelInfer", infer_images(), ()),
                ("infer_images_typed", "ModelInfer", infer_images(typed=True), ()),
                ("infer_classification", "ModelInfer", infer_images(3),
                 (("authorization", "Bearer seed-token"), ("x-request-id", "seed-1"))),
                ("infer_unknown_model", "ModelInfer", pb2.ModelInferRequest(model_name="nope"),
                 ()),
            ]
            for name, method, req, md in calls:
                with grpc.insecure_channel(f"127.0.0.1:{proxy.port}",
                                           options=[("grpc.enable_http_proxy", 0)]) as ch:
                    stub = pb2_grpc.GRPCInferenceServiceStub(ch)
                    try:
                        getattr(stub, method)(req, metadata=md, timeout=30)
                    except grpc.RpcError as e:
                        if name != "infer_unknown_model":
                            raise
                        assert e.code() == grpc.StatusCode.NOT_FOUND, e
            proxy.close()
            for (name, _, _, _), rec in zip(calls, proxy.captures):
                with open(os.path.join(out, "grpcio_" + name), "wb") as f:
                    f.write(bytes(rec))
            print(f"{len(proxy.captures)} connections captured into {out}")
        finally:
            srv.stop()
            srv.cleanup()


if __name__ == "__main__":
    sys.exit(main())
