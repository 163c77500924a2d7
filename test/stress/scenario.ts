// What the stress scenarios share: the row each reports, the rule file of N distinct faults they log,
// and the agent as a real process watched through its /metrics (its worst event-loop delay included).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NODE_LABEL } from '../../agent/api/crds.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { AGENT_NAMESPACE, startCluster, type TestCluster } from '../cluster/cluster.js';
import { asShipped, spawnAgent, startedPort } from '../helpers/agent.js';
import { applyAgentRBAC, applyCRDs, customObjects, GROUP, VERSION } from '../helpers/kube.js';
import { ProcessorServer } from '../helpers/processor-server.js';

/** One row of docs/stress.md's table. */
export type ScenarioResult = {
  scenario: string;
  /** The measured outcome, in words and numbers. */
  figure: string;
  /** Whether the outcome is what the scenario demands (a failed scenario fails `npm run stress`). */
  ok: boolean;
};

/** How often the scenarios' agents sample their event-loop delay; the delay is the reported lag less this. */
const EVENT_LOOP_SAMPLE_MS = 100;

/** A log line that is fault `i` of a fault rule file. */
export const faultLine = (i: number) => `stress: fault-${String(i).padStart(3, '0')} occurred`;

/** A rule file (nodemedic's format) on `logFile` with `count` rules, Fault1…FaultN: N distinct symptoms. */
export async function writeFaultRules(file: string, logFile: string, count: number, abnormal: Record<string, unknown>): Promise<void> {
  const rules = Array.from({ length: count }, (_, i) => `  - {reason: Fault${i + 1}, pattern: '${faultLine(i + 1)}', abnormal: ${JSON.stringify(abnormal)}}`);
  await writeFile(file, `kind: LogRules\nplugin: file\nlogPath: ${logFile}\nsource: stress\nrules:\n${rules.join('\n')}\n`);
}

/**
 * `nodemedic agent ARGS` as a process, its /metrics read every half second: the counters the scenario
 * waits on, and the worst event-loop delay (prom-client's monitor, reset at each read, so the worst
 * over all reads is the worst of the run up to the last read).
 */
export class WatchedAgent {
  worstDelayMs = 0;
  private port?: number;
  private readonly child: ReturnType<typeof spawnAgent>;
  private readonly timer: NodeJS.Timeout;
  private metrics = '';

  constructor(args: string[], readonly logFile: string) {
    // As shipped; its event loop sampled every 100 ms (the default, 1000, would see a 30 ms stall only
    // when a sample falls in it).
    const shipped = asShipped();
    this.child = spawnAgent(args, logFile, { ...shipped, env: { ...shipped.env, NODEMEDIC_EVENT_LOOP_SAMPLE_MS: String(EVENT_LOOP_SAMPLE_MS) } });
    this.timer = setInterval(() => void this.scrape(), 500);
  }

  /** Resolves once the agent has said it started (its sources are reading). */
  async started(timeoutMs = 60_000): Promise<this> {
    this.port = await startedPort(this.logFile, timeoutMs);
    return this;
  }

  /** The value of a metric (summed over its label sets), as of now. */
  async metric(name: string, labels = ''): Promise<number> {
    await this.scrape();
    let sum = 0;
    for (const line of this.metrics.split('\n')) if (line.startsWith(`${name}${labels}`) && /[ {]/.test(line[name.length] ?? '')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    return sum;
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    await this.scrape();
    clearInterval(this.timer);
    this.child.kill(signal);
    await this.child.exited;
  }

  private async scrape(): Promise<void> {
    if (!this.port) return;
    try {
      this.metrics = await (await fetch(`http://127.0.0.1:${this.port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      const lag = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(this.metrics)?.[1];
      // The monitor's figure is the time between two samples: the delay is what exceeds the interval.
      if (lag) this.worstDelayMs = Math.max(this.worstDelayMs, Number(lag) * 1000 - EVENT_LOOP_SAMPLE_MS);
    } catch {
      // stopped, or between a kill and its restart
    }
  }
}

/**
 * What the scenarios running now must undo (a cluster to stop, a tmpfs to unmount): run by `npm run
 * stress` when it is interrupted, so that nothing is left behind then either.
 */
export const teardowns = new Set<() => Promise<void>>();

/** Runs `work`, then `teardown` — also when the run is interrupted meanwhile (teardowns). */
export async function withTeardown<T>(teardown: () => Promise<void>, work: () => Promise<T>): Promise<T> {
  teardowns.add(teardown);
  try {
    return await work();
  } finally {
    teardowns.delete(teardown);
    await teardown();
  }
}

/** What a scenario on a cluster of its own works with; `start` runs the agent on BASE/config.yaml. */
export type OnCluster = {
  base: string;
  cluster: TestCluster;
  server: ProcessorServer;
  start(): WatchedAgent;
  /** The worst event-loop delay any of the agents started showed. */
  worstDelayMs(): number;
};

/**
 * Runs `scenario` with a directory, a test cluster and a processor server of its own, all gone
 * afterwards with every agent it started (SIGKILLed), whatever happened.
 */
export async function onStressCluster<T>(name: string, scenario: (on: OnCluster) => Promise<T>): Promise<T> {
  const base = await mkdtemp(path.join(tmpdir(), `nodemedic-stress-${name}-`));
  const cluster = await stressCluster();
  const server = await new ProcessorServer().start();
  const agents: WatchedAgent[] = [];
  return withTeardown(async () => {
    for (const agent of agents) await agent.kill('SIGKILL');
    await server.stop();
    await cluster.stop();
    await rm(base, { recursive: true, force: true });
  }, () => scenario({
      base, cluster, server,
      start() {
        const agent = new WatchedAgent(['--config', path.join(base, 'config.yaml')], path.join(base, 'agent.log'));
        agents.push(agent);
        return agent;
      },
      worstDelayMs: () => Math.max(0, ...agents.map((a) => a.worstDelayMs)),
    }));
}

/**
 * A test cluster of the scenario's own (etcd + kube-apiserver, the CRDs, the agent's RBAC), its
 * kubeconfigs handed to the test helpers through the environment as `npm test` does.
 */
async function stressCluster(): Promise<TestCluster> {
  const cluster = await startCluster();
  process.env.NODEMEDIC_TEST_KUBECONFIG = cluster.kubeconfigs.admin;
  process.env.NODEMEDIC_TEST_AGENT_KUBECONFIG = cluster.kubeconfigs.agent;
  process.env.NODEMEDIC_TEST_UNPRIVILEGED_KUBECONFIG = cluster.kubeconfigs.unprivileged;
  process.env.NODEMEDIC_TEST_KUBE_BIN = cluster.binDir;
  await applyCRDs();
  await applyAgentRBAC();
  return cluster;
}

/** The Abnormals of one node, in the agent's namespace. */
export async function abnormalsOf(node: string): Promise<Abnormal[]> {
  const list = (await customObjects().listNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace: AGENT_NAMESPACE, plural: 'abnormals', labelSelector: `${NODE_LABEL}=${node}`,
  })) as { items: Abnormal[] };
  return list.items;
}

/** The agent's configuration for a scenario on the kube store: only the given rule files as sources. */
export function kubeAgentConfig(node: string, stateDir: string, kubeconfig: string, extra = ''): string {
  return `nodeName: ${node}\nstore: kube\nkubeconfig: ${kubeconfig}\nstateDir: ${stateDir}\nlogLevel: info\n` +
    `events: {enabled: false}\nstuckPods: {enabled: false}\n${extra}`;
}
