#!/usr/bin/env python3
"""Seeds for the gRPC fuzz target: real client exchanges, captured.

    make_grpc_seeds.py RESNETD_BINARY OUT_DIR

Starts `resnetd serve --grpc-port 0` with a small torch-exported model, puts
a TCP proxy in front of the gRPC port and makes real python3-grpcio calls
through it, one channel (one connection) per exchange: every RPC, FP32 raw
and typed, BYTES images (PNG, JPEG, WebP), classification, metadata (bearer
token, grpc-timeout), an unknown model. Each file in OUT_DIR is everything
the client wrote on one connection (preface, SETTINGS, HEADERS, DATA,
WINDOW_UPDATE, ...), the bytes a server reads; `<name>.msg` files are the
bare request messages (protobuf, without the 5-byte prefix).
tests/fuzz/corpus/<target>/ holds the committed output.
"""

import os
import socket
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "protocols"))
import grpc_kserve as gk  # noqa: E402
import ptest  # noqa: E402

import grpc  # noqa: E402
import numpy as np  # noqa: E402


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
    binary, out = os.path.abspath(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="grpc-seeds-") as tmp:
        pb2, pb2_grpc = gk.stubs(os.path.join(tmp, "stubs"))
        models = ptest.export_models(tmp)
        srv = gk.GrpcServer(binary, ["--model", models["gray"][0], "--model", models["rgb"][0]])
        try:
            proxy = Proxy(srv.grpc_port)
            x = np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32)
            imgs = [ptest.make_image(i, f) for i, f in enumerate(["png", "jpg", "webp"])]

            def infer_fp32(typed):
                r = pb2.ModelInferRequest(model_name="gray", id="seed")
                t = r.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
                if typed:
                    t.contents.fp32_contents.extend(x.ravel().tolist())
                else:
                    r.raw_input_contents.append(x.tobytes())
                return r

            def infer_images(k=0, typed=False):
                r = pb2.ModelInferRequest(model_name="rgb")
                t = r.inputs.add(name="image", datatype="BYTES", shape=[3, 1])
                if typed:
                    t.contents.bytes_contents.extend(imgs)
                else:
                    r.raw_input_contents.append(b"".join(len(b).to_bytes(4, "little") + b
                                                         for b in imgs))
                if k:
                    o = r.outputs.add(name="scores")
                    o.parameters["classification"].int64_param = k
                r.parameters["timeout"].int64_param = 5000000
                return r

            calls = [
                ("server_live", "ServerLive", pb2.ServerLiveRequest(), ()),
                ("server_ready", "ServerReady", pb2.ServerReadyRequest(), ()),
                ("model_ready", "ModelReady", pb2.ModelReadyRequest(name="gray", version="1"), ()),
                ("server_metadata", "ServerMetadata", pb2.ServerMetadataRequest(), ()),
                ("model_metadata", "ModelMetadata", pb2.ModelMetadataRequest(name="rgb"), ()),
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
                with open(os.path.join(out, name + ".msg"), "wb") as f:
                    f.write(req.SerializeToString())
            proxy.close()
            for (name, _, _, _), rec in zip(calls, proxy.captures):
                with open(os.path.join(out, name + ".h2"), "wb") as f:
                    f.write(bytes(rec))
            print(f"{len(proxy.captures)} connections captured into {out}")
        finally:
            srv.stop()
            srv.cleanup()


if __name__ == "__main__":
    sys.exit(main())
