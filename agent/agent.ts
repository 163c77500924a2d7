// The daemon's wiring: configuration → backend (store, processor catalog, secrets, events) → processor
// registry → pipeline; the symptom sources and their sink; the HTTP server.
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { KubeClient } from './kube/client.js';
import type { Logger } from 'pino';
import { builtinProcessors } from './builtins.js';
import type { Config } from './config.js';
import { BearerToken } from './lib/bearer-token.js';
import { Turns } from './lib/turns.js';
import { AgentMetrics } from './metrics.js';
import { cidrList } from './node/addresses.js';
import { CriClient } from './node/cri.js';
import { GarbageCollector } from './pipeline/garbage.js';
import { NodeConditions, nodeMessageOf } from './pipeline/node-conditions.js';
import { Pipeline } from './pipeline/pipeline.js';
import { RecoveryRails } from './pipeline/rails.js';
import type { Processor } from './processors/contract.js';
import { ProcessorRegistry } from './processors/registry.js';
import { startServer } from './server.js';
import { AlertSource } from './sources/alerts.js';
import { SymptomJournal } from './sources/journal.js';
import { SymptomSink } from './sources/sink.js';
import type { SymptomSource } from './sources/source.js';
import { symptomSources } from './sources/sources.js';
import { FileCatalog } from './store/file-catalog.js';
import { FileEventLog } from './store/file-events.js';
import { FileStore } from './store/file.js';
import type { AbnormalStore, Backend, EventRecorder, NodeReporter, ProcessorCatalog } from './store/store.js';
import type { Abnormal } from './api/types.generated.js';

export type RunningAgent = {
  pipeline: Pipeline;
  store: AbnormalStore;
  events: EventRecorder;
  sink: SymptomSink;
  /** The symptom sources that started. */
  sources: SymptomSource[];
  gc: GarbageCollector;
  /** The port the HTTP server listens on (useful when the configuration said port 0). */
  port: number;
  /** Finish the steps in flight, then stop; with `abort`, cancel processor calls in flight instead. */
  stop(abort?: boolean): Promise<void>;
};

export type AgentOptions = {
  builtins?: readonly Processor[];
};

export async function startAgent(config: Config, log: Logger, options: AgentOptions = {}): Promise<RunningAgent> {
  const backend = await makeBackend(config, log);
  const { store, client } = backend;
  const { recovery, shims } = config;
  const readPod = client ? (await import('./kube/client.js')).podReader(client) : undefined;
  const runtime = new CriClient(config.probes.criEndpoint); // connects on first use
  const builtins = options.builtins ?? builtinProcessors({
    log,
    probes: {
      allowExec: config.probes.allowExec, runtime, nodeName: config.nodeName, allowedTargets: cidrList(config.probes.allowedTargets),
      readPod: readPod && (async (namespace, name) => {
        const pod = await readPod(namespace, name);
        const ips = (pod?.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => Boolean(ip));
        return pod && {
          uid: pod.metadata?.uid, nodeName: pod.spec?.nodeName, podIPs: ips.length > 0 ? ips : pod.status?.podIP ? [pod.status.podIP] : [],
          containers: pod.spec?.containers.map((c) => c.name) ?? [],
        };
      }),
    },
    shims: {
      containerdLog: shims.containerdLog, timeoutSeconds: shims.dumpTimeoutSeconds, unresponsiveSeconds: shims.unresponsiveSeconds,
      ...(config.sources.journalDirectory ? { journalDirectory: config.sources.journalDirectory } : {}),
    },
    recovery: {
      signal: recovery.signal, allowedExecutables: recovery.allowedExecutables, dryRun: recovery.dryRun, confirmSeconds: recovery.confirmSeconds, runtime,
      // Gone: not found, or replaced by a pod of the same name.
      podGone: readPod && (async ({ namespace, name, uid }) => {
        const pod = await readPod(namespace, name);
        return !pod || (uid !== undefined && pod.metadata?.uid !== uid);
      }),
    },
  });
  const { collectors, diagnosers, recoverers, defaultTimeoutSeconds, maxOutputBytes } = config.scripts;
  const registry = new ProcessorRegistry(builtins, backend, {
    maxReplyBytes: config.maxReplyBytes,
    defaultTimeoutSeconds: config.processorTimeoutSeconds,
  }, {
    dirs: { InformationCollector: collectors, Diagnoser: diagnosers, Recoverer: recoverers },
    defaultTimeoutSeconds, maxOutputBytes,
  });
  const rails = new RecoveryRails({
    stateDir: config.stateDir, maxPerHour: recovery.maxPerHour, cooldownSeconds: recovery.cooldownSeconds, log,
    budget: client ? await clusterBudget(client, config) : undefined,
  });
  const metrics = new AgentMetrics(config.eventLoopSampleMs);
  const pipeline = new Pipeline({
    store, events: backend.events, registry, nodeName: config.nodeName, concurrency: config.concurrency, log, rails, dryRun: recovery.dryRun,
    onStep: (processor, outcome, ms) => metrics.processorRan(processor, outcome, ms),
    onTransition: (phase, reason) => metrics.phaseEntered(phase, reason),
    // The conditions follow what the store holds: nudged by its changes, not by our own writes, which a
    // watch may not have delivered yet.
    onChange: () => nodeConditions?.nudge(),
  });
  // Symptoms: sources → sink (dedup, flood control) → store. A source that fails to start is logged
  // and left out; the agent goes on with the others.
  const journal = new SymptomJournal({ file: path.join(config.stateDir, 'symptoms.jsonl'), maxBytes: config.symptoms.journalMaxBytes, log });
  const { journalMaxBytes: _, ...flood } = config.symptoms;
  let nodeConditions: NodeConditions | undefined; // made once the rule files have said which conditions there are
  const nodeEvents = new NodeEventQueue(backend.node, log);
  const sink = new SymptomSink({
    store, nodeName: config.nodeName, log, ...flood, journal,
    onWritten: (abnormal, what) => {
      nodeConditions?.nudge();
      if (what === 'created' && config.nodeStatus.enabled) nodeEvents.add(abnormal, config.nodeName);
    },
  });
  const sources: SymptomSource[] = [];
  const gc = new GarbageCollector({ ...config.gc, store, log });
  metrics.observe({ pipeline, sink, gc, store, sources: () => sources });
  const alerts = alertSource(config, backend);
  const server = await startServer({
    listen: config.listen, builtins: servedBuiltins(config, backend, builtins), notReady: () => notReady(store, backend.catalog), log,
    metrics: () => metrics.render(),
    alerts,
  });
  await backend.start(); // the processor registrations are known before any Abnormal is worked on
  await pipeline.start();
  gc.start(); // after the store's first list: it deletes only what that list shows finished
  await mkdir(config.stateDir, { recursive: true });
  await sink.start(); // replays what the last run journaled before any source reads on
  const made = await symptomSources(config, log, client, { beforeSave: () => sink.syncJournal(), onJournaled: (save) => sink.onJournaled(save) });
  if (config.nodeStatus.enabled) {
    nodeConditions = new NodeConditions({ store, reporter: backend.node, ...made.conditions, log, resyncMs: config.nodeStatus.resyncSeconds * 1000 });
    await nodeConditions.start();
  }
  for (const source of [...made.sources, ...(alerts ? [alerts.receiver] : [])]) {
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
    events: backend.events,
    sink,
    sources,
    gc,
    port: server.port,
    async stop(abort = false) {
      await gc.stop();
      await Promise.all(sources.map((s) => s.stop()));
      await nodeConditions?.stop();
      await sink.stop(); // what was seen is written before the agent goes
      await pipeline.stop(abort);
      await Promise.all([server.close(), backend.stop(), registry.close(), runtime.close()]);
      log.info('agent stopped');
    },
  };
}

type RunningBackend = Backend & { client?: KubeClient; start(): Promise<void>; stop(): Promise<void> };

async function makeBackend(config: Config, log: Logger): Promise<RunningBackend> {
  if (config.store === 'file') {
    const store = new FileStore({ dir: config.stateDir, log, resyncMs: config.resyncSeconds * 1000 });
    const catalog = new FileCatalog({ dir: config.stateDir, log });
    const events = new FileEventLog({ dir: config.stateDir, log, nodeName: config.nodeName });
    return { store, catalog, secrets: catalog, events, node: events, start: async () => {}, stop: () => store.stop() };
  }
  // Loaded only for the kube store: a file-store agent never pays for the client's TLS and HTTP.
  const [{ loadKubeClient }, { KubeStore }, { KubeCatalog }, { KubeEventRecorder }, { KubeNodeReporter }] = await Promise.all([
    import('./kube/client.js'), import('./store/kube.js'), import('./store/kube-catalog.js'), import('./store/kube-events.js'), import('./store/kube-node.js'),
  ]);
  const client = loadKubeClient(config.kubeconfig);
  const store = new KubeStore({ client, nodeName: config.nodeName, namespace: config.namespace, namespaces: config.abnormalNamespaces, log, resyncSeconds: config.resyncSeconds });
  const catalog = new KubeCatalog({ client, processorNamespaces: config.processorNamespaces, log });
  const events = new KubeEventRecorder({ client, nodeName: config.nodeName, log });
  return {
    store, catalog, secrets: catalog, client, events,
    node: new KubeNodeReporter({ client, nodeName: config.nodeName, events }),
    start: () => catalog.start(),
    stop: async () => {
      await Promise.all([store.stop(), catalog.stop()]);
      client.close();
    },
  };
}

/** The Alertmanager receiver, when a token is configured. */
function alertSource(config: Config, backend: Backend) {
  const token = bearerToken(config, backend, config.alerts);
  return token && { receiver: new AlertSource({ nodeLabels: config.alerts.nodeLabels }), token };
}

/** The built-in processors the server offers: none unless switched on; behind their token when one is configured. */
function servedBuiltins(config: Config, backend: Backend, processors: readonly Processor[]) {
  const { serve, serveRecoverers } = config.builtinProcessors;
  if (!serve) return undefined;
  const token = bearerToken(config, backend, config.builtinProcessors); // absent only on loopback (the config's rule)
  return { processors, serveRecoverers, ...(token ? { token } : {}) };
}

/** A token callers must send, from a file or a Secret; re-read every 10 s at most, so rotating it needs no restart. */
function bearerToken(config: Config, backend: Backend, from: { tokenFile: string; tokenSecret?: { namespace?: string; name: string; key: string } }) {
  const { tokenFile, tokenSecret } = from;
  if (tokenSecret) return new BearerToken(() => backend.secrets.readSecret(tokenSecret.namespace ?? config.namespace, tokenSecret.name, tokenSecret.key));
  if (tokenFile) return new BearerToken(() => readFile(tokenFile, 'utf8'));
  return undefined;
}

async function clusterBudget(client: KubeClient, config: Config) {
  const { ClusterBudget } = await import('./pipeline/cluster-budget.js');
  const { maxNodesAtOnce, budgetLockName, budgetNamespace, budgetTTLSeconds } = config.recovery;
  return new ClusterBudget({ client, namespace: budgetNamespace ?? config.namespace, name: budgetLockName, nodeName: config.nodeName, maxNodes: maxNodesAtOnce, ttlSeconds: budgetTTLSeconds });
}

/** Why the agent is not ready yet (for /readyz), or undefined once its store has listed its Abnormals. */
function notReady(store: AbnormalStore, catalog: ProcessorCatalog): string | undefined {
  if (store.synced) return undefined;
  const why = catalog.notSyncedBecause ?? store.notSyncedBecause;
  return `the store has not listed its Abnormals yet${why ? `: ${why}` : ''}`;
}

/**
 * A temporary rule's new Abnormal about this node is told as an Event on the Node, as node-problem-detector
 * tells each temporary problem (its repeats are counted on the Abnormal, not told again). One Event is
 * written at a time, so a burst of new symptoms does not send as many Event writes at once beside its
 * creates. At most MAX_WAITING wait; beyond, they are counted and said, not written.
 */
class NodeEventQueue {
  private static readonly MAX_WAITING = 100;
  private readonly turns = new Turns();
  private waiting = 0;
  private dropped = 0;

  constructor(private readonly node: NodeReporter, private readonly log: Logger) {}

  add(abnormal: Abnormal, nodeName: string): void {
    const rule = abnormal.spec.context?.rule as { type?: unknown; reason?: unknown } | undefined;
    if (abnormal.spec.nodeName !== nodeName || rule?.type !== 'temporary' || typeof rule.reason !== 'string') return;
    if (this.waiting >= NodeEventQueue.MAX_WAITING) {
      this.dropped++;
      this.log.warn({ dropped: this.dropped }, 'too many Node events waiting; this one is not written (its Abnormal is)');
      return;
    }
    const message = nodeMessageOf(abnormal);
    const reason = rule.reason;
    this.waiting++;
    void this.turns.run(() => this.node.recordNodeEvent('Warning', reason, message)).finally(() => this.waiting--);
  }
}
