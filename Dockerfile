# The agent's image: Node 24 on Debian, with journalctl (journald sources) and nsenter (scripts that
# need the node's own tools). Build from a checkout: docker build -t nodemedic:0.1.0 .
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY agent agent
COPY collectors collectors
COPY diagnosers diagnosers
COPY recoverers recoverers
# The product only (tsconfig.build.json): no tests, no development scripts.
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends systemd util-linux && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/nodemedic
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
COPY package.json ./
COPY manifests manifests
ENTRYPOINT ["node", "/opt/nodemedic/dist/agent/main.js"]
CMD ["agent"]
