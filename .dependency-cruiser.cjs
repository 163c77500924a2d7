// The layering, as rules `npm run lint:deps` (and so CI) checks. docs/design.md says why each folder
// exists; these rules say which may import which. Lower layers never import higher ones:
//
//   lib      generic mechanisms (atomic files, backoff, capped reads); imports nothing of ours
//   api      the Abnormal API: schemas, types, kinds, reasons, phases, limits
//   kube     the Kubernetes client and the lock on an object's annotations
//   node     node inspection: /proc, shims, goroutine dumps, CRI, the kernel log, log followers
//   store    where Abnormals live (file, kube), and the catalog, secrets and events beside them
//   processors  the one processor contract, the typed evidence built-ins share, adapters, registry
//   sources  symptom sources; only the sink writes to the store
//   pipeline the queue, the steps, the rails
//   built-ins  collectors/, diagnosers/, recoverers/: the contract, evidence, node, api and lib only
//   wiring   agent/*.ts: main, agent, config, server, metrics, builtins, run-one
const LAYERS = '^(agent|collectors|diagnosers|recoverers)/';
const WIRING = '^agent/(agent|main|run-one|server|metrics|builtins)\\.ts$';

/** A rule that `from` imports nothing of ours outside `allowed` (a regex of paths). */
const only = (name, comment, from, allowed) => ({
  name, comment, severity: 'error',
  from: { path: from },
  to: { path: LAYERS, pathNot: allowed },
});

module.exports = {
  forbidden: [
    { name: 'no-cycles', comment: 'A cycle makes two modules one; split what they share into a lower layer.', severity: 'error', from: {}, to: { circular: true } },
    { name: 'no-tests-in-the-product', comment: 'Nothing shipped imports test code.', severity: 'error', from: { path: LAYERS }, to: { path: '^test/' } },
    { name: 'no-wiring-below', comment: 'The wiring (agent/*.ts) imports the layers; no layer imports the wiring.', severity: 'error',
      from: { path: '^(agent/[^/]+/|collectors/|diagnosers/|recoverers/)' }, to: { path: WIRING } },
    only('lib-is-a-leaf', 'agent/lib holds mechanisms that know nothing of nodemedic.', '^agent/lib/', '^agent/lib/'),
    only('api-on-lib', 'The API depends on nothing but itself and lib.', '^agent/api/', '^agent/(api|lib)/'),
    only('kube-on-api', 'The Kubernetes helpers know the API and lib only.', '^agent/kube/', '^agent/(kube|api|lib)/'),
    only('node-on-api', 'Node inspection is a library for sources and built-ins alike.', '^agent/node/', '^agent/(node|api|lib)/'),
    only('config-is-low', 'The configuration is read by every layer, so it imports only the API, node facts, lib and its own schema and check.', '^agent/config(-schema)?\\.ts$',
      '^agent/(api|node|lib)/|^agent/config(-schema|\\.generated)\\.ts$'),
    only('store-holds-abnormals', 'Stores know the API, the Kubernetes helpers and lib: not processors, sources or the pipeline.', '^agent/store/', '^agent/(store|api|kube|lib)/'),
    only('processors-contract', 'The contract, adapters and registry: the API, node facts (evidence), lib, and the store\'s interfaces.', '^agent/processors/',
      '^agent/(processors|api|node|lib)/|^agent/store/store\\.ts$'),
    only('sources-emit-symptoms', 'Sources turn input into symptoms; they know no processor and no pipeline.', '^agent/sources/',
      '^agent/(sources|api|node|kube|lib)/|^agent/store/store\\.ts$|^agent/config\\.ts$'),
    { name: 'only-the-sink-writes-symptoms', comment: 'A source hands symptoms to the sink; only the sink talks to the store.', severity: 'error',
      from: { path: '^agent/sources/', pathNot: '^agent/sources/sink\\.ts$' }, to: { path: '^agent/store/' } },
    only('pipeline-through-registry', 'The pipeline knows processors through the contract and the registry only.', '^agent/pipeline/',
      '^agent/(pipeline|api|kube|lib|store)/|^agent/processors/(contract|registry)\\.ts$'),
    { name: 'schemas-at-build-time', comment: 'zod schemas (*-schema.ts) are sources `npm run gen` compiles into *.generated.ts; the agent runs those and imports a schema for its types only.', severity: 'error',
      from: { path: LAYERS, pathNot: '-schema\\.ts$' }, to: { path: '-schema\\.ts$|node_modules/zod/', dependencyTypesNot: ['type-only'] } },
    only('builtins-use-the-contract', 'A built-in imports the contract, the typed evidence, node inspection, the API and lib — never the pipeline, the store, a source or another built-in.',
      '^(collectors|diagnosers|recoverers)/', '^agent/(api|node|lib)/|^agent/processors/(contract|evidence)\\.ts$'),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|\\.cache)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
