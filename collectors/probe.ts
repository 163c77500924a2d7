// Probes: for an Abnormal with spec.source Probe, run its spec.nodeProbe or spec.podProbe — exec,
// httpGet or tcpSocket — with its timeout, and record the result: status.context.probe (healthy or not,
// and why) and status.output (what the command printed, or the HTTP status). Exec probes run commands as
// root on the node — or in any container on it — and anyone allowed to create an Abnormal could ask for
// one, so they are refused unless the agent's configuration enables them (probes.allowExec).
// Exec in a container goes through the node's container runtime (CRI ExecSync, as the kubelet's own
// exec probes), so it reaches only pods on this node.
// httpGet and tcpSocket reach only what a probe of this node is for: a nodeProbe this node's own
// addresses (loopback included), a podProbe the IPs of that pod, which must run on this node (read
// from the apiserver). Link-local and cloud metadata addresses are refused wherever they are; what
// probes.allowedTargets lists is allowed besides. A name is resolved once and every address it gives
// is checked; the probe connects to the address checked. Redirects are not followed, and the body is
// read up to OUTPUT_LIMIT within the timeout.
import { lookup } from 'node:dns/promises';
import { connect, isIP, type BlockList } from 'node:net';
import { Reason } from '../agent/api/reasons.js';
import type { HTTPGetAction, NodeProbe, PodProbe } from '../agent/api/types.generated.js';
import { readCapped } from '../agent/lib/capped-read.js';
import { isCloudMetadata, nodeAddresses, normalize } from '../agent/node/addresses.js';
import { CriError, type CriClient } from '../agent/node/cri.js';
import { BUILTIN_NAMESPACE, failure, type Outcome, type Processor } from '../agent/processors/contract.js';
import { evidence } from '../agent/processors/evidence.js';

const OUTPUT_LIMIT = 64 * 1024;

type ProbeResult = { healthy: boolean; detail: string; output?: string };

/** What the apiserver says of a pod (kube store only). */
export type PodFacts = { uid?: string; nodeName?: string; podIPs: string[]; containers: string[] };

export type ProbeOptions = {
  allowExec: boolean;
  /** This node's name: a podProbe's pod must run here. */
  nodeName?: string;
  /** Addresses a probe may reach besides this node's own and the probed pod's (probes.allowedTargets). */
  allowedTargets?: BlockList;
  /** This node's addresses (default: its interfaces'). */
  ownAddresses?: () => string[];
  /** Reads a pod: its IP for httpGet/tcpSocket without a host, its first container for exec. */
  readPod?: (namespace: string, name: string) => Promise<PodFacts | undefined>;
  /** The node's container runtime, for exec in a container. */
  runtime?: CriClient;
};

export function probeCollector(options: ProbeOptions): Processor {
  return {
    kind: 'InformationCollector',
    ref: { namespace: BUILTIN_NAMESPACE, name: 'probe' },
    async run(abnormal, signal) {
      const probe: NodeProbe | PodProbe | undefined = abnormal.spec.nodeProbe ?? abnormal.spec.podProbe;
      if (abnormal.spec.source !== 'Probe' || !probe) return { ok: true }; // nothing to probe
      const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
      const started = Date.now();
      let result: ProbeResult;
      const pod = abnormal.spec.podProbe;
      if (probe.exec) {
        if (!options.allowExec) return failure(Reason.ExecProbesDisabled, 'exec probes run commands as root on the node or in its containers; enable them with probes.allowExec in the agent configuration');
        if (pod) {
          const found = await containerToExecIn(pod, options, signal);
          if ('reason' in found) return failure(found.reason, found.message);
          const ran = await execInContainer(options.runtime!, found.id, probe.exec.command, probe.timeoutSeconds ?? 1, signal);
          if ('reason' in ran) return failure(ran.reason, ran.message);
          result = ran;
        } else {
          result = await execProbe(probe.exec.command, timeoutMs, signal);
        }
      } else {
        const action = (probe.httpGet ?? probe.tcpSocket)!;
        if (typeof action.port !== 'number') return failure(Reason.NamedPortUnsupported, `port "${action.port}" is a name; give the number`);
        const target = await probeTarget(action.host, pod, options);
        if ('reason' in target) return failure(target.reason, target.message);
        result = probe.httpGet ? await httpProbe(probe.httpGet, target, action.port, timeoutMs, signal) : await tcpProbe(target.ip, action.port, timeoutMs);
      }
      const outcome: Outcome = {
        ok: true,
        context: evidence({ probe: { healthy: result.healthy, detail: result.detail, durationMs: Date.now() - started } }),
        message: `probe ${result.healthy ? 'healthy' : 'unhealthy'}: ${result.detail}`,
      };
      if (result.output) outcome.output = result.output;
      return outcome;
    },
  };
}

type Refusal = { reason: string; message: string };

/** Why `ip` may not be probed, or undefined when it may: it is one of `reachable`, or loopback where `loopback`, or allowed besides — never link-local or a cloud metadata address unless allowed besides. */
export function targetRefusal(ip: string, reachable: readonly string[], loopback: boolean, allowedBesides?: BlockList): string | undefined {
  const address = normalize(ip);
  if (allowedBesides?.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4')) return undefined;
  if (isCloudMetadata(address)) return `${ip} is a link-local or cloud metadata address`;
  if (loopback && (address === '::1' || /^127\./.test(address))) return undefined;
  if (reachable.map(normalize).includes(address)) return undefined;
  return `${ip} is not ${loopback ? 'an address of this node' : 'an IP of the probed pod'}`;
}

/** The address to connect to for this probe, checked; or why there is none. */
async function probeTarget(host: string | undefined, pod: PodProbe | undefined, options: ProbeOptions): Promise<{ ip: string; name?: string } | Refusal> {
  let reachable: string[];
  if (pod) {
    const podName = `${pod.namespace}/${pod.name}`;
    if (!options.readPod) {
      // No apiserver to say which pod has which IP: only what the configuration allows besides.
      if (!host) return { reason: Reason.PodIPUnknown, message: `pod ${podName}: without the apiserver its IP cannot be read; give httpGet.host or tcpSocket.host` };
      reachable = [];
    } else {
      let facts: PodFacts | undefined;
      try {
        facts = await options.readPod(pod.namespace, pod.name);
      } catch (err) {
        return { reason: Reason.PodUnreadable, message: `cannot read pod ${podName}: ${(err as Error).message}` };
      }
      if (!facts) return { reason: Reason.PodUnreadable, message: `there is no pod ${podName}` };
      if (options.nodeName && facts.nodeName !== options.nodeName) {
        return { reason: Reason.PodNotOnThisNode, message: `pod ${podName} runs on ${facts.nodeName ?? 'no node yet'}, not on ${options.nodeName}: its agent probes it` };
      }
      reachable = facts.podIPs;
      host ??= facts.podIPs[0];
      if (!host) return { reason: Reason.PodIPUnknown, message: `pod ${podName} has no IP the agent can find; give httpGet.host or tcpSocket.host` };
    }
  } else {
    reachable = (options.ownAddresses ?? nodeAddresses)();
    host ??= '127.0.0.1';
  }
  let ips: string[];
  try {
    ips = isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  } catch (err) {
    return { reason: Reason.ProbeTargetRefused, message: `cannot resolve ${host}: ${(err as Error).message}` };
  }
  for (const ip of ips) {
    const why = targetRefusal(ip, reachable, !pod, options.allowedTargets);
    if (why) return { reason: Reason.ProbeTargetRefused, message: `${host === ip ? '' : `${host}: `}${why}; probes.allowedTargets can allow it` };
  }
  return { ip: ips[0]!, ...(isIP(host) ? {} : { name: host }) };
}

/** The running container the probe names, or its first one, as the node's runtime knows it. */
async function containerToExecIn(pod: PodProbe, options: ProbeOptions, signal: AbortSignal): Promise<{ id: string } | Refusal> {
  const podName = `${pod.namespace}/${pod.name}`;
  if (!options.runtime) return { reason: Reason.NoContainerRuntime, message: 'exec in a container needs the node\'s container runtime (probes.criEndpoint)' };
  let facts: PodFacts | undefined;
  try {
    facts = await options.readPod?.(pod.namespace, pod.name);
  } catch (err) {
    return { reason: Reason.PodUnreadable, message: `cannot read pod ${podName}: ${(err as Error).message}` };
  }
  const container = pod.container ?? facts?.containers[0];
  try {
    const running = await options.runtime.runningContainers({ namespace: pod.namespace, name: pod.name, uid: facts?.uid, container }, signal);
    const names = [...new Set(running.map((c) => c.name))];
    if (running.length === 0) {
      return { reason: Reason.ContainerNotFound, message: `no running container${container ? ` "${container}"` : ''} of pod ${podName} on this node` };
    }
    if (names.length > 1) return { reason: Reason.ContainerAmbiguous, message: `pod ${podName} runs ${names.join(', ')}; name one in podProbe.container` };
    return { id: running[0]!.id };
  } catch (err) {
    return { reason: Reason.ContainerRuntimeError, message: (err as Error).message };
  }
}

async function execInContainer(runtime: CriClient, containerId: string, command: string[], timeoutSeconds: number, signal: AbortSignal): Promise<ProbeResult | Refusal> {
  try {
    const r = await runtime.execSync(containerId, command, timeoutSeconds, signal);
    const output = Buffer.concat([r.stdout, r.stderr]).subarray(0, OUTPUT_LIMIT).toString('utf8'); // as the kubelet: stdout, then stderr
    return { healthy: r.exitCode === 0, detail: `${command[0]} in container ${containerId.slice(0, 12)} exited with ${r.exitCode}`, output };
  } catch (err) {
    const code = err instanceof CriError ? err.code : undefined;
    const where = `${command[0]} in container ${containerId.slice(0, 12)}`;
    // The runtime ends the command at the timeout and says so (a call outliving even that is the same verdict).
    if (code === DEADLINE_EXCEEDED) return { healthy: false, detail: `${where} did not finish within ${timeoutSeconds} s` };
    // No runtime to ask: the probe did not happen, which is not the same as unhealthy.
    if (code === UNAVAILABLE || code === undefined) return { reason: Reason.ContainerRuntimeError, message: (err as Error).message };
    // The runtime answered but the command could not run (not found, container gone): unhealthy, as on the node.
    return { healthy: false, detail: `${where} could not run: ${(err as Error).message}` };
  }
}

const [DEADLINE_EXCEEDED, UNAVAILABLE] = [4, 14]; // gRPC status codes

async function execProbe(command: string[], timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  const [file, ...args] = command;
  const { execa } = await import('execa'); // loaded by the agents that probe, not by every agent
  const r = await execa(file!, args, { timeout: timeoutMs, reject: false, all: true, stdin: 'ignore', cancelSignal: signal, maxBuffer: OUTPUT_LIMIT, killSignal: 'SIGKILL' });
  const output = (r.all ?? '').slice(0, OUTPUT_LIMIT);
  if (r.timedOut) return { healthy: false, detail: `${file} did not finish within ${timeoutMs / 1000} s`, output };
  if (r.failed && r.exitCode === undefined) return { healthy: false, detail: `${file} could not run: ${r.shortMessage}`, output };
  return { healthy: r.exitCode === 0, detail: `${file} exited with ${r.exitCode}`, output };
}

async function httpProbe(action: HTTPGetAction, target: { ip: string; name?: string }, port: number, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  const { ip, name } = target;
  const url = `${(action.scheme ?? 'HTTP').toLowerCase()}://${ip.includes(':') ? `[${ip}]` : ip}:${port}${action.path ?? '/'}`;
  try {
    // undici does not follow redirects: a 3xx is the answer, never a second request elsewhere.
    const { request } = await import('undici');
    const res = await request(url, {
      method: 'GET',
      headers: { ...(name ? { host: `${name}:${port}` } : {}), ...Object.fromEntries((action.httpHeaders ?? []).map((h) => [h.name, h.value])) },
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    });
    // Only the start of the page is evidence; the rest is never read.
    const { text } = await readCapped(res.body, OUTPUT_LIMIT, { cut: true });
    return { healthy: res.statusCode >= 200 && res.statusCode < 400, detail: `GET ${url} answered ${res.statusCode}`, output: text };
  } catch (err) {
    return { healthy: false, detail: `GET ${url} failed: ${(err as Error).message}` };
  }
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
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
