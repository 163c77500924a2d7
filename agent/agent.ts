// The daemon's wiring: configuration → store → processor registry → pipeline, the symptom sources and
// their sink, and the HTTP server.
import { readFile } from 'node:fs/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { AgentMetrics } from './metrics.js';
import { Pipeline } from './pipeline/pipeline.js';
import { RecoveryRails } from './pipeline/rails.js';
import { builtinProcessors } from './processors/builtins.js';
import type { Processor } from './processors/contract.js';
import { CriClient } from './processors/cri.js';
import { ProcessorRegistry } from './processors/registry.js';
import { startServer } from './server.js';
import { AlertReceiver } from './sources/alerts.js';
import { symptomSources } from './sources/sources.js';
import type { SymptomSource } from './sources/log-source.js';
import { SymptomSink } from './sources/sink.js';
import { FileStore } from './store/file.js';
import type { AbnormalStore } from './store/store.js';

export type RunningAgent = {
  pipeline: Pipeline;
  store: AbnormalStore;
  sink: SymptomSink;
  /** The symptom sources that started. */
  sources: SymptomSource[];
  /** The port the HTTP server listens on (useful when the configuration said port 0). */
  port: number;
  /** Finish the steps in flight, then stop; with `abort`, cancel processor calls in flight instead. */
  stop(abort?: boolean): Promise<void>;
};

export type AgentOptions = {
  builtins?: readonly Processor[];
  /** Overrides config.kubeconfig (tests, and embedding the agent in another program). */
  kubeConfig?: KubeConfig;
};

export async function startAgent(config: Config, log: Logger, options: AgentOptions = {}): Promise<RunningAgent> {
  const { store, kc } = await makeStore(config, log, options.kubeConfig);
  const { recovery, shims } = config;
  const readPod = kc ? await podReader(kc) : undefined;
  const runtime = new CriClient(config.probes.criEndpoint); // connects on first use
  const builtins = options.builtins ?? builtinProcessors({
    probes: {
      allowExec: config.probes.allowExec, runtime,
      readPod: readPod && (async (namespace, name) => {
        const pod = await readPod(namespace, name);
        return pod && { uid: pod.metadata?.uid, podIP: pod.status?.podIP, containers: pod.spec?.containers.map((c) => c.name) ?? [] };
      }),
    },
    shims: { containerdLog: shims.containerdLog, timeoutSeconds: shims.dumpTimeoutSeconds, unresponsiveSeconds: shims.unresponsiveSeconds },
    recovery: {
      signal: recovery.signal, allowedExecutables: recovery.allowedExecutables, dryRun: recovery.dryRun, confirmSeconds: recovery.confirmSeconds,
      // Gone: not found, or replaced by a pod of the same name.
      podGone: readPod && (async ({ namespace, name, uid }) => {
        const pod = await readPod(namespace, name);
        return !pod || (uid !== undefined && pod.metadata?.uid !== uid);
      }),
    },
  });
  const { collectors, diagnosers, recoverers, defaultTimeoutSeconds, maxOutputBytes } = config.scripts;
  const registry = new ProcessorRegistry(builtins, store, {
    maxReplyBytes: config.maxReplyBytes,
    defaultTimeoutSeconds: config.processorTimeoutSeconds,
  }, {
    dirs: { InformationCollector: collectors, Diagnoser: diagnosers, Recoverer: recoverers },
    defaultTimeoutSeconds, maxOutputBytes,
  });
  const rails = new RecoveryRails({
    stateDir: config.stateDir, maxPerHour: recovery.maxPerHour, cooldownSeconds: recovery.cooldownSeconds, log,
    budget: kc ? await clusterBudget(kc, config) : undefined,
  });
  const metrics = new AgentMetrics();
  const pipeline = new Pipeline({
    store, registry, nodeName: config.nodeName, concurrency: config.concurrency, log, rails, dryRun: recovery.dryRun,
    onStep: (processor, outcome, ms) => metrics.processorRan(processor, outcome, ms),
    onTransition: (phase, reason) => metrics.phaseEntered(phase, reason),
  });
  // Symptoms: sources → sink (dedup, flood control) → store. A source that fails to start is logged
  // and left out; the agent goes on with the others.
  const sink = new SymptomSink({ store, nodeName: config.nodeName, log, ...config.symptoms });
  const sources: SymptomSource[] = [];
  metrics.observe({ pipeline, sink, sources: () => sources });
  const server = await startServer({
    listen: config.listen, builtins, serveRecoverers: config.serveRecoverers, ready: () => store.synced, log,
    metrics: () => metrics.render(),
    alerts: alertReceiver(config, store, sink, log),
  });
  await pipeline.start();
  sink.start();
  for (const source of await symptomSources(config, log, kc)) {
    try {
      await source.start((symptom) => sink.accept(symptom));
      sources.push(source);
    } catch (err) {
      log.error({ source: source.name, err: (err as Error).message }, 'source failed to start; running without it');
    }
  }
  log.info({ store: config.store, sources: sources.map((s) => s.name), listen: `${config.listen.replace(/:\d+$/, '')}:${server.port}` }, 'agent started');
  return {
    pipeline,
    store,
    sink,
    sources,
    port: server.port,
    async stop(abort = false) {
      await Promise.all(sources.map((s) => s.stop()));
      await sink.stop(); // what was seen is written before the agent goes
      await pipeline.stop(abort);
      await Promise.all([server.close(), store.stop(), registry.close(), runtime.close()]);
      log.info('agent stopped');
    },
  };
}

async function makeStore(config: Config, log: Logger, kubeConfig?: KubeConfig): Promise<{ store: AbnormalStore; kc?: KubeConfig }> {
  if (config.store === 'file') return { store: new FileStore({ dir: config.stateDir, log }) };
  // Loaded only for the kube store: @kubernetes/client-node alone adds about 80 MiB of resident memory.
  const [{ KubeConfig }, { KubeStore }] = await Promise.all([import('@kubernetes/client-node'), import('./store/kube.js')]);
  let kc = kubeConfig;
  if (!kc) {
    kc = new KubeConfig();
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
  }
  const store = new KubeStore({
    kc, nodeName: config.nodeName, namespace: config.namespace, processorNamespaces: config.processorNamespaces, log, resyncSeconds: config.resyncSeconds,
  });
  return { store, kc };
}

/** The Alertmanager receiver, when a token is configured (a file, or a Secret). The token is read at each request, so rotating it needs no restart. */
function alertReceiver(config: Config, store: AbnormalStore, sink: SymptomSink, log: Logger) {
  const { tokenFile, tokenSecret, nodeLabels } = config.alerts;
  if (!tokenFile && !tokenSecret) return undefined;
  const token = tokenSecret
    ? () => store.readSecret(tokenSecret.namespace ?? config.namespace, tokenSecret.name, tokenSecret.key)
    : () => readFile(tokenFile, 'utf8');
  return { receiver: new AlertReceiver({ store, accept: (s) => sink.accept(s), nodeLabels, log }), token };
}

/** Reads a pod from the apiserver; undefined when there is none of that name (kube store). */
async function podReader(kc: KubeConfig) {
  const { ApiException, CoreV1Api } = await import('@kubernetes/client-node');
  const core = kc.makeApiClient(CoreV1Api);
  return async (namespace: string, name: string) => {
    try {
      return await core.readNamespacedPod({ namespace, name });
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  };
}

async function clusterBudget(kc: KubeConfig, config: Config) {
  const { ClusterBudget } = await import('./pipeline/cluster-budget.js');
  const { maxNodesAtOnce, budgetLockName, budgetNamespace, budgetTTLSeconds } = config.recovery;
  return new ClusterBudget({ kc, namespace: budgetNamespace ?? config.namespace, name: budgetLockName, nodeName: config.nodeName, maxNodes: maxNodesAtOnce, ttlSeconds: budgetTTLSeconds });
}

