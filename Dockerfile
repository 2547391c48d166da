# resnetd container image.
#   docker build -t resnetd:0.1.0 .
#   docker run --rm -p 8080:8080 resnetd:0.1.0         # serves the bundled default model
#   docker run --rm -p 8080:8080 -p 8081:8081 resnetd:0.1.0   # ...and gRPC on 8081
#   docker run --rm -p 8080:8080 -v "$PWD/my-models:/models:ro" resnetd:0.1.0
#                                      # serves every model (sub-directory) of a repository
# Configuration is by environment variables: RESNETD_<KEY> for every key of
# `resnetd serve --print-config` (e.g. RESNETD_MAX_BATCH, RESNETD_WORKERS).
#
# The build stage runs the same scripts as CI (.ci/run -> scripts/test.sh):
# tests/deploy/static_test.py fails if the two drift apart.

############################ build ############################
FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first: editing the sources reuses this layer.
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN BUILD_DIR=build scripts/build.sh -DRESNETD_WERROR=ON
# Install into a staging tree (binary + share/resnetd/models + the man page;
# the systemd unit and its config file belong to the .deb, not the image) and
# list the Debian packages that own the shared libraries the binary loads.
RUN DESTDIR=/stage cmake --install build --prefix /usr/local --strip \
 && rm -rf /stage/usr/local/etc /stage/usr/local/lib/systemd \
 && deploy/docker/runtime-packages.sh /stage/usr/local/bin/resnetd > /stage/runtime-packages.txt \
 && cat /stage/runtime-packages.txt

############################ runtime ############################
FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="resnetd" \
      org.opencontainers.image.description="ONNX image classification server (oneDNN, CPU)" \
      org.opencontainers.image.version="0.1.0"
# Only the runtime libraries (e.g. libdnnl2, libmicrohttpd12, libjansson4,
# libjpeg62-turbo, libpng16-16, libwebp7, libprotobuf-c1), plus curl for the
# HEALTHCHECK.
COPY --from=build /stage/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      curl $(cat /tmp/runtime-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 resnetd \
 && useradd --system --uid 10001 --gid resnetd --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin resnetd \
 && mkdir -p /models
COPY --from=build /stage/usr/local/ /usr/local/
# Fails the build if a runtime library is missing.
RUN resnetd --version

# /models is the model repository: mount one there (one sub-directory per
# model). While it is empty, resnetd serves the default model installed in
# /usr/local/share/resnetd/models (found relative to the executable).
ENV RESNETD_HOST=0.0.0.0 \
    RESNETD_PORT=8080 \
    RESNETD_GRPC_PORT=8081 \
    RESNETD_MODEL_REPOSITORY=/models
# HTTP, and gRPC (KServe v2 / Triton GRPCInferenceService, docs/grpc.md)
EXPOSE 8080 8081
USER 10001:10001
WORKDIR /models
# SIGTERM: /readyz turns 503, accepted requests finish, exit 0 within
# RESNETD_DRAIN_TIMEOUT_MS. Give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${RESNETD_PORT:-8080}/healthz" || exit 1
# Exec form: resnetd is PID 1 and receives the signals itself; its exit code
# is the container's.
ENTRYPOINT ["/usr/local/bin/resnetd"]
CMD ["serve"]
