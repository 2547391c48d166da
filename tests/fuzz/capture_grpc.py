"""Captures what a real gRPC client library (python3-grpcio, i.e. grpc-core)
sends on one connection, as seeds for fuzz_grpc (tests/fuzz/corpus/grpc/
grpcio_*): a relay between the client and a real `resnetd serve` records the
client's bytes. The server runs fuzz_grpc's model (corpus/onnx/res_gray8.onnx,
input "x" 1x8x8, output "y") so the captured calls succeed there too.

usage: /usr/bin/python3 tests/fuzz/capture_grpc.py build/resnetd"""

import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus", "grpc")
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
import resnetd_serve  # noqa: E402


def relay(listener, port, record):
    cli, _ = listener.accept()
    srv = socket.create_connection(("127.0.0.1", port))

    def pump(a, b, rec):
        while True:
            try:
                d = a.recv(65536)
            except OSError:
                d = b""
            if not d:
                try:
                    b.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if rec is not None:
                rec.append(d)
            b.sendall(d)

    t = threading.Thread(target=pump, args=(srv, cli, None), daemon=True)
    t.start()
    pump(cli, srv, record)


def capture(port, name, calls):
    """Runs calls(stub, pb) through a relay; writes the client's bytes."""
    import grpc
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    rec = []
    th = threading.Thread(target=relay, args=(lst, port, rec), daemon=True)
    th.start()
    ch = grpc.insecure_channel(f"127.0.0.1:{lst.getsockname()[1]}")
    calls(ch)
    ch.close()
    th.join(10)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(b"".join(rec))


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{SRC}/server/grpc",
                        f"--python_out={tmp}", f"--grpc_python_out={tmp}", "grpc_service.proto"],
                       check=True)
        sys.path.insert(0, tmp)
        import grpc_service_pb2 as pb
        import grpc_service_pb2_grpc as pbg
        os.makedirs(os.path.join(tmp, "m"))
        shutil.copy(os.path.join(HERE, "corpus", "onnx", "res_gray8.onnx"),
                    os.path.join(tmp, "m", "model.onnx"))
        with open(os.path.join(tmp, "m", "config.json"), "w") as f:
            f.write('{"name": "m", "input": {"color": "gray", "resize": 8, "crop": 8}}')
        srv = resnetd_serve.Server(binary, ["--model", os.path.join(tmp, "m")])
        try:
            b = io.BytesIO()
            Image.fromarray(np.arange(144, dtype=np.uint8).reshape(12, 12), "L").save(b, "PNG")
            png = b.getvalue()

            def control(ch):
                st = pbg.GRPCInferenceServiceStub(ch)
                st.ServerLive(pb.ServerLiveRequest())
                st.ServerReady(pb.ServerReadyRequest())
                st.ModelMetadata(pb.ModelMetadataRequest(name="m"))

            def infer(ch):
                st = pbg.GRPCInferenceServiceStub(ch)
                r = pb.ModelInferRequest(model_name="m", id="cap")
                t = r.inputs.add(name="x", datatype="BYTES", shape=[2])
                r.raw_input_contents.append(b"".join(struct.pack("<I", len(png)) + png
                                                     for _ in range(2)))
                o = r.outputs.add(name="y")
                o.parameters["classification"].int64_param = 2
                st.ModelInfer(r, timeout=10, metadata=[("x-request-id", "cap-1")])
                r2 = pb.ModelInferRequest(model_name="m")
                t = r2.inputs.add(name="x", datatype="FP32", shape=[1, 1, 8, 8])
                t.contents.fp32_contents.extend(float(i) for i in range(64))
                st.ModelInfer(r2, timeout=10)

            capture(srv.grpc_port, "grpcio_control", control)
            capture(srv.grpc_port, "grpcio_infer", infer)
            srv.stop()
        finally:
            srv.cleanup()
    print("captured grpcio_control, grpcio_infer into", OUT)


if __name__ == "__main__":
    main()
