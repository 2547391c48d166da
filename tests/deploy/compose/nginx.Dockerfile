# Test stand-in for the compose stack's nginx:1.27-bookworm image (no registry
# here): Debian's nginx, run the way the stack runs it. deploy/nginx/ is
# mounted over /etc/nginx/nginx.conf as in deploy/compose.yaml.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 8080
CMD ["nginx", "-g", "daemon off;"]
