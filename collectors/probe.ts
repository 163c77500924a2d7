// Probes: for an Abnormal with spec.source Probe, run its spec.nodeProbe or spec.podProbe — exec,
// httpGet or tcpSocket — with its timeout, and record the result: status.context.probe (healthy or not,
// and why) and status.output (what the command printed, or the HTTP status). Exec probes run commands as
// root on the node, and anyone allowed to create an Abnormal could ask for one, so they are refused
// unless the agent's configuration enables them (probes.allowExec).
import { connect } from 'node:net';
import { execa } from 'execa';
import { request } from 'undici';
import type { Abnormal, HTTPGetAction, NodeProbe, PodProbe, TCPSocketAction } from '../agent/api/types.generated.js';
import { BUILTIN_NAMESPACE, failure, type Outcome, type Processor } from '../agent/processors/contract.js';

const OUTPUT_LIMIT = 64 * 1024;

type ProbeResult = { healthy: boolean; detail: string; output?: string };

export type ProbeOptions = {
  allowExec: boolean;
  /** The pod's IP, for a pod probe without a host (the kube store gives this; the file store cannot). */
  podIP?: (namespace: string, name: string) => Promise<string | undefined>;
};

export function probeCollector(options: ProbeOptions): Processor {
  return {
    kind: 'InformationCollector',
    ref: { namespace: BUILTIN_NAMESPACE, name: 'probe' },
    async run(abnormal, signal) {
      const probe: NodeProbe | PodProbe | undefined = abnormal.spec.nodeProbe ?? abnormal.spec.podProbe;
      if (abnormal.spec.source !== 'Probe' || !probe) return { ok: true }; // nothing to probe
      const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
      const onPod = abnormal.spec.podProbe !== undefined;
      const started = Date.now();
      let result: ProbeResult;
      if (probe.exec) {
        if (onPod) return failure('NotSupported', 'exec in a container needs the kubelet\'s exec API, which the agent does not use yet');
        if (!options.allowExec) return failure('ExecProbesDisabled', 'exec probes run commands as root on the node; enable them with probes.allowExec in the agent configuration');
        result = await execProbe(probe.exec.command, timeoutMs, signal);
      } else {
        const pod = abnormal.spec.podProbe;
        const host = probe.httpGet?.host ?? probe.tcpSocket?.host ??
          (pod ? contextPodIP(abnormal) ?? (await options.podIP?.(pod.namespace, pod.name).catch(() => undefined)) : '127.0.0.1');
        if (!host) return failure('PodIPUnknown', `pod ${pod?.namespace}/${pod?.name} has no IP the agent can find; give httpGet.host or tcpSocket.host`);
        const action = (probe.httpGet ?? probe.tcpSocket)!;
        if (typeof action.port !== 'number') return failure('NamedPortUnsupported', `port "${action.port}" is a name; give the number`);
        result = probe.httpGet ? await httpProbe(probe.httpGet, host, action.port, timeoutMs, signal) : await tcpProbe(probe.tcpSocket!, host, action.port, timeoutMs);
      }
      const outcome: Outcome = {
        ok: true,
        context: { probe: { healthy: result.healthy, detail: result.detail, durationMs: Date.now() - started } },
        message: `probe ${result.healthy ? 'healthy' : 'unhealthy'}: ${result.detail}`,
      };
      if (result.output) outcome.output = result.output;
      return outcome;
    },
  };
}

function contextPodIP(abnormal: Abnormal): string | undefined {
  const pod = abnormal.status?.context?.pod as { podIP?: unknown } | undefined;
  return typeof pod?.podIP === 'string' ? pod.podIP : undefined;
}

async function execProbe(command: string[], timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  const [file, ...args] = command;
  const r = await execa(file!, args, { timeout: timeoutMs, reject: false, all: true, stdin: 'ignore', cancelSignal: signal, maxBuffer: OUTPUT_LIMIT, killSignal: 'SIGKILL' });
  const output = (r.all ?? '').slice(0, OUTPUT_LIMIT);
  if (r.timedOut) return { healthy: false, detail: `${file} did not finish within ${timeoutMs / 1000} s`, output };
  if (r.failed && r.exitCode === undefined) return { healthy: false, detail: `${file} could not run: ${r.shortMessage}`, output };
  return { healthy: r.exitCode === 0, detail: `${file} exited with ${r.exitCode}`, output };
}

async function httpProbe(action: HTTPGetAction, host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  const url = `${(action.scheme ?? 'HTTP').toLowerCase()}://${host.includes(':') ? `[${host}]` : host}:${port}${action.path ?? '/'}`;
  try {
    const res = await request(url, {
      method: 'GET',
      headers: Object.fromEntries((action.httpHeaders ?? []).map((h) => [h.name, h.value])),
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    });
    const body = (await res.body.text()).slice(0, OUTPUT_LIMIT);
    return { healthy: res.statusCode >= 200 && res.statusCode < 400, detail: `GET ${url} answered ${res.statusCode}`, output: body };
  } catch (err) {
    return { healthy: false, detail: `GET ${url} failed: ${(err as Error).message}` };
  }
}

function tcpProbe(_action: TCPSocketAction, host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (result: ProbeResult) => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => done({ healthy: true, detail: `connected to ${host}:${port}` }));
    socket.once('timeout', () => done({ healthy: false, detail: `no connection to ${host}:${port} within ${timeoutMs / 1000} s` }));
    socket.once('error', (err) => done({ healthy: false, detail: `cannot connect to ${host}:${port}: ${err.message}` }));
  });
}
