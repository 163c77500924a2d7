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
# The image runs the agent bundled by esbuild (`npm run bundle`): dist/bundle/nodemedic.js and the chunks
# it imports when a configuration needs them (the kube store's client, events, ...), minified. V8 keeps
# the source of every module it loads; minified, one file instead of 110 modules and their packages'
# files, that is 2.6 MiB less resident on Node 24 (docs/design.md, memory). The source maps are beside
# them: `NODE_OPTIONS=--enable-source-maps` gives stack traces in the TypeScript sources.
# --max-opt=1: V8 runs the agent's JavaScript without its optimizing compilers (Maglev, TurboFan). The agent's hot path is native (the regular expression
# searching each chunk of a log, JSON, I/O), so they bought nothing there and cost, measured on Node 24
# (docs/benchmarks.md): 9 MiB resident at idle, and a fifth of the CPU on a 1 M-line log (compiling in
# the background). What it costs: JavaScript that runs per line is slower (the rules benchmark shows by
# how much). It also leaves out the compilers where most of V8's exploitable bugs have been, in a
# process that is root on the node.
# --no-sparkplug: no baseline compiler either; V8's interpreter runs everything. 1.5 MiB less resident
# idle on Node 24; the price is per-line JavaScript again (the rules benchmark) and about a tenth more
# CPU on the 1 M-line log. V8 refuses both flags in NODE_OPTIONS, so they are given here.
# --no-node-snapshot: Node sets itself up by running its bootstrap code rather than by copying in the
# heap saved in its binary. Reading that saved heap touches more of the binary than the agent ever
# needs again, and it stays resident: 3.9 MiB less on Node 24 (3.2 on Node 20), kube store, idle after
# an Abnormal. The price is 40 ms more to start; no change in CPU on the 1 M-line log.
ENTRYPOINT ["node", "--max-opt=1", "--no-sparkplug", "--no-node-snapshot", "/opt/nodemedic/dist/bundle/nodemedic.js"]
CMD ["agent"]
