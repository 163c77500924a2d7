// The agent's configuration: every key, its type, its limits and its default, beside what it means.
// This is the source of truth; the agent does not load it. `npm run gen` compiles it into the check
// agent/config.generated.ts (zod, then JSON Schema, then ajv's standalone code), which agent/config.ts
// runs: zod and the schema it builds cost about 7 MiB resident on Node 24 (docs/design.md, memory).
// What JSON Schema cannot say (an address or CIDR list, a token needed off loopback) agent/config.ts
// checks after it.
import { z } from 'zod';
import { SHIM_EXECUTABLES } from './node/shims.js';

/**
 * A string `pattern` must match; `message` says what a mismatch is. The message is carried into the
 * JSON Schema as x-message, where agent/api/validate.ts reads it.
 */
const matching = (string: z.ZodString, pattern: RegExp, message: string) => string.regex(pattern, message).meta({ 'x-message': message });

const listenAddress = matching(z.string(), /^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'must be HOST:PORT, e.g. 127.0.0.1:9095');
const int = (min: number, max: number) => z.number().int().min(min).max(max);
const secretKeyRef = z.strictObject({ namespace: z.string().min(1).optional(), name: z.string().min(1), key: z.string().min(1) });

// Every key with its default beside it: a section left out of the file, or a key left out of a
// section, takes the defaults (`prefault({})` parses a missing section as an empty one).
export const ConfigObject = z.strictObject({
  /** This node's name; the agent handles only Abnormals whose spec.nodeName is this. Default: the host name. */
  nodeName: matching(z.string().min(1).max(253), /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a node name (lower-case DNS name)'),
  /** kube: custom resources in the cluster; file: files in stateDir (no cluster needed). */
  store: z.enum(['kube', 'file']).default('file'),
  /** The file store's directory, and where every store keeps the sources' positions and the recovery history. */
  stateDir: z.string().min(1).default('/var/lib/nodemedic'),
  /** Where the symptom sources create Abnormals (kube store). */
  namespace: matching(z.string().max(63), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name').default('nodemedic-system'),
  /**
   * Namespaces whose Abnormals the agent watches, claims and works on (kube store; "*" for all;
   * absent: `namespace` alone). Whoever may create an Abnormal there may make the agent collect,
   * probe and recover on the node it names, so by default only the agent's own namespace counts.
   */
  abnormalNamespaces: z.array(z.string().min(1)).min(1).optional(),
  /**
   * Namespaces whose InformationCollector / Diagnoser / Recoverer objects the agent trusts (kube store;
   * "*" for all; absent: `namespace` alone). Anyone who can create such an object there can make every
   * agent call it with the node's Abnormals, and a Recoverer can act on the node.
   */
  processorNamespaces: z.array(z.string().min(1)).min(1).optional(),
  /** The kube store's kubeconfig; absent: in-cluster, else $KUBECONFIG, else ~/.kube/config. */
  kubeconfig: z.string().min(1).optional(),
  /** How many Abnormals are worked on at once. */
  concurrency: int(1, 256).default(4),
  /** The agent's HTTP server: /healthz, /readyz, /metrics, /v1/alerts, /processors/... */
  listen: listenAddress.default('127.0.0.1:9095'),
  /**
   * The built-in processors over HTTP, at POST /processors/<kind>/<name>, for other tooling to call.
   * Off by default: a caller could make the node fetch any URL (probe), read every process's command
   * line (process-tree) or signal shims (goroutine-dump). On, they need a bearer token of their own
   * unless `listen` is a loopback address.
   */
  builtinProcessors: z.strictObject({
    serve: z.boolean().default(false),
    /** Serve the built-in recoverers too: they change the node. */
    serveRecoverers: z.boolean().default(false),
    /** A file holding the bearer token callers must send. */
    tokenFile: z.string().default(''),
    /** A Secret holding it (kube store), in `namespace` (default: the agent's). */
    tokenSecret: secretKeyRef.optional(),
  }).prefault({}),
  /** Used for HTTP processors whose object sets no timeoutSeconds. */
  processorTimeoutSeconds: int(1, 600).default(30),
  /** Largest reply accepted from an HTTP processor. */
  maxReplyBytes: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  /** Every Abnormal not yet finished is looked at again this often, whatever the watch says. */
  resyncSeconds: int(5, 86_400).default(300),
  /**
   * How often the event-loop delay behind nodejs_eventloop_lag_* is sampled. Each sample wakes the
   * agent: every 100 ms cost 0.2 % of a core on an idle node here, every 1000 ms a tenth of that. A
   * stall longer than this is always seen; a shorter one only when a sample falls in it.
   */
  eventLoopSampleMs: int(10, 60_000).default(1000),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** Which logs are watched, and with which rules. */
  sources: z.strictObject({
    /** The built-in kernel rules on /dev/kmsg (agent/sources/default-rules.ts). */
    defaultRules: z.boolean().default(true),
    /** Rule files, NPD JSON or nodemedic YAML; each file's plugin and logPath say what it reads. */
    ruleFiles: z.array(z.string().min(1)).default([]),
    /** Read with the kernel rules when /dev/kmsg cannot be opened; "" for none. */
    kernelLogFallback: z.string().default('/var/log/kern.log'),
    /** The journal journald sources read: "" for the system journal, else a journal directory. */
    journalDirectory: z.string().default(''),
  }).prefault({}),
  /** Script processors: a directory per kind ("" for none), the default timeout, the output cap. */
  scripts: z.strictObject({
    collectors: z.string().default('/etc/nodemedic/collectors'),
    diagnosers: z.string().default('/etc/nodemedic/diagnosers'),
    recoverers: z.string().default('/etc/nodemedic/recoverers'),
    defaultTimeoutSeconds: int(1, 3600).default(30),
    maxOutputBytes: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  }).prefault({}),
  /** Warning events about nodes and their pods (kube store); one agent at a time watches them. */
  events: z.strictObject({
    enabled: z.boolean().default(true),
    includeReasons: z.array(z.string()).default([]),
    excludeReasons: z.array(z.string()).default([]),
    lockName: z.string().min(1).default('nodemedic-event-watcher'),
    lockTTLSeconds: int(3, 3600).default(30),
  }).prefault({}),
  /** Probes (spec.nodeProbe, spec.podProbe). Exec runs commands as root on the node or in its containers: off unless set. */
  probes: z.strictObject({
    allowExec: z.boolean().default(false),
    /**
     * Addresses or CIDRs httpGet / tcpSocket probes may reach besides this node's own (nodeProbe) and the
     * probed pod's (podProbe); only here can a link-local or cloud metadata address be allowed.
     */
    allowedTargets: z.array(z.string()).default([]), // each an address or a CIDR: agent/config.ts checks
    /** The container runtime's CRI endpoint, as the kubelet's --container-runtime-endpoint (exec in a container). */
    criEndpoint: matching(z.string(), /^unix:\/\/\//, 'a unix socket: unix:///path').default('unix:///run/containerd/containerd.sock'),
  }).prefault({}),
  /** Pods of this node still there marginSeconds after their deletion deadline (kube store only). */
  stuckPods: z.strictObject({
    enabled: z.boolean().default(true),
    marginSeconds: int(0, 86_400).default(60),
    checkSeconds: z.number().min(0.1).max(3600).default(10),
  }).prefault({}),
  /** The Alertmanager webhook receiver at /v1/alerts; off until a token is configured. */
  alerts: z.strictObject({
    /** A file holding the bearer token Alertmanager must send (file store, or any store). */
    tokenFile: z.string().default(''),
    /** A Secret holding it (kube store), in `namespace` (default: the agent's). */
    tokenSecret: secretKeyRef.optional(),
    /** Labels that name an alert's node, tried in order; an instance's ":port" is dropped. */
    nodeLabels: z.array(z.string().min(1)).min(1).default(['node', 'kubernetes_node', 'nodename', 'instance']),
  }).prefault({}),
  /** The container-shim processors (collectors/goroutine-dump.ts, diagnosers/unresponsive-shim.ts). */
  shims: z.strictObject({
    /** Where containerd logs, and so where a shim's goroutine dump lands: "journald:UNIT" (in the journal sources.journalDirectory names, else the system journal) or a file path. */
    containerdLog: z.string().min(1).default('journald:containerd.service'),
    /** How long a shim is given to answer SIGUSR1 with its dump. */
    dumpTimeoutSeconds: z.number().min(0.5).max(300).default(5),
    /** How long a shim must stay stopped (T) or in uninterruptible sleep (D), with no dump, to be diagnosed unresponsive. */
    unresponsiveSeconds: z.number().min(0).max(3600).default(10),
  }).prefault({}),
  /** Recovery, the one stage that changes the node, and its rails (agent/pipeline/rails.ts). */
  recovery: z.strictObject({
    /** Act on nothing: built-in recoverers say what they would do, others are not called. */
    dryRun: z.boolean().default(false),
    /** What the signal-process recoverer sends. */
    signal: z.enum(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP']).default('SIGKILL'),
    /** Executables (file names) the signal-process recoverer may signal. */
    allowedExecutables: z.array(z.string().min(1)).min(1).default([...SHIM_EXECUTABLES]),
    /** How long a recoverer waits to see the symptom gone after acting. */
    confirmSeconds: int(1, 3600).default(60),
    /** Recoveries on this node in any hour, at most. */
    maxPerHour: int(1, 1000).default(6),
    /** A fault with the same fingerprint recovered less than this ago is left to a person. */
    cooldownSeconds: int(0, 7 * 86_400).default(3600),
    /** Nodes recovering at the same moment across the cluster (kube store), at most. */
    maxNodesAtOnce: int(1, 100_000).default(3),
    /** The Lease holding that budget (in budgetNamespace, default the agent's), and how long a slot is held at most. */
    budgetLockName: z.string().min(1).default('nodemedic-recovery-budget'),
    budgetNamespace: z.string().min(1).optional(),
    budgetTTLSeconds: int(10, 86_400).default(600),
  }).prefault({}),
  /**
   * Conditions and Events on this node's Node object, as node-problem-detector sets them
   * (agent/pipeline/node-conditions.ts). Off where NPD still runs beside nodemedic with the same rules.
   */
  nodeStatus: z.strictObject({
    enabled: z.boolean().default(true),
    /** The conditions are computed again this often, whatever happens (an Abnormal deleted by hand). */
    resyncSeconds: int(5, 86_400).default(60),
  }).prefault({}),
  /** Finished Abnormals of this node, deleted by its agent (agent/pipeline/garbage.ts). */
  gc: z.strictObject({
    /** Succeeded ones, this long after they finished. */
    succeededTTLSeconds: int(60, 365 * 86_400).default(86_400),
    /** Failed and Unknown ones wait for a person: longer. */
    failedTTLSeconds: int(60, 365 * 86_400).default(7 * 86_400),
    /** Finished ones kept at most, the oldest deleted first. */
    maxFinished: int(1, 100_000).default(200),
    intervalSeconds: int(10, 86_400).default(600),
  }).prefault({}),
  /** Dedup and flood control between the sources and the store (agent/sources/sink.ts). */
  symptoms: z.strictObject({
    flushSeconds: z.number().min(0.1).max(300).default(5),
    cooldownSeconds: int(0, 86_400).default(600),
    createBurst: int(1, 1000).default(10),
    createPerMinute: z.number().min(0.1).max(6000).default(30),
    maxTracked: int(10, 1_000_000).default(10_000),
    /** The symptom journal's size at most (stateDir/symptoms.jsonl): what is seen and not yet written, kept across restarts. */
    journalMaxBytes: int(64 * 1024, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
  }).prefault({}),
});

/** What the check leaves: every default filled in. */
export type ConfigChecked = z.output<typeof ConfigObject>;

/**
 * The configuration as the agent uses it: every default filled in, and the trusted namespaces, when
 * left out, the agent's own (agent/config.ts).
 */
export type Config = Omit<ConfigChecked, 'abnormalNamespaces' | 'processorNamespaces'> & {
  abnormalNamespaces: string[];
  processorNamespaces: string[];
};
