// The one source of truth for the nodemedic API (group nodemedic.io, version v1alpha1).
//
// From these definitions `npm run gen` writes manifests/crds/*.yaml (what the apiserver enforces) and
// agent/api/types.generated.ts (what the code compiles against); agent/api/validate.ts checks objects
// from outside the API (files, HTTP replies, script output) against the very same schemas. A test fails
// when the committed YAML or types differ from what these definitions generate, so they cannot drift.
//
// Schemas here are Kubernetes structural schemas (a subset of OpenAPI v3). The only extensions used are
// x-kubernetes-preserve-unknown-fields and x-kubernetes-int-or-string; `title` names the generated type.

import { PROCESSOR_PLURALS } from './kinds.js';

export const GROUP = 'nodemedic.io';
/** The component the agents' Kubernetes Events name as their source (and that the event watcher passes over). */
export const EVENT_COMPONENT = 'nodemedic';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
/** `kubectl get nodemedic` lists every kind of this API. */
export const CATEGORY = 'nodemedic';
/** Labels: the node an Abnormal is for (what each agent watches), and the symptom's fingerprint. */
export const NODE_LABEL = `${GROUP}/node`;
export const FINGERPRINT_LABEL = `${GROUP}/fingerprint`;
/** What a symptom is about (a pod), hashed with its node: symptoms about one subject join one Abnormal. */
export const SUBJECT_LABEL = `${GROUP}/subject`;
/** status.context keys under this prefix are the agent's own records; processors may not write them. */
export const AGENT_CONTEXT_PREFIX = `${GROUP}/`;

export type Schema = {
  [keyword: string]: unknown;
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  title?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  required?: string[];
  enum?: unknown[];
};

// Limits keep every object well under etcd's 1.5 MiB request limit even when every field is full of
// evidence; the pipeline truncates to these sizes before it writes.
export const LIMITS = {
  name: 253,
  shortText: 1024,
  message: 32 * 1024,
  logEntry: 64 * 1024,
  output: 256 * 1024,
  path: 4096,
  listItems: 32,
} as const;

const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

const str = (maxLength: number, description: string, extra: Partial<Schema> = {}): Schema => ({
  type: 'string',
  maxLength,
  description,
  ...extra,
});
const time = (description: string): Schema => ({ type: 'string', format: 'date-time', description });
const freeForm = (description: string): Schema => ({
  type: 'object',
  description,
  'x-kubernetes-preserve-unknown-fields': true,
});
const intOrString = (description: string): Schema => ({
  description,
  'x-kubernetes-int-or-string': true,
  anyOf: [{ type: 'integer' }, { type: 'string' }], // the only shape the apiserver allows here
});
const stringMap = (description: string): Schema => ({
  type: 'object',
  description,
  maxProperties: 128,
  additionalProperties: { type: 'string', maxLength: LIMITS.message },
});
/** Exactly one of the named fields must be set. */
const exactlyOneOf = (...fields: string[]): Schema[] => fields.map((field) => ({ required: [field] }));

const processorRef: Schema = {
  type: 'object',
  title: 'ProcessorRef',
  description: 'Names an InformationCollector, Diagnoser or Recoverer object.',
  required: ['namespace', 'name'],
  properties: {
    namespace: str(63, 'Namespace of the processor object.', { minLength: 1 }),
    name: str(LIMITS.name, 'Name of the processor object.', { minLength: 1 }),
  },
};
const processorRefList = (kinds: string): Schema => ({
  type: 'array',
  description: `${kinds} to run, in this order. Empty or absent: every registered one that applies.`,
  maxItems: LIMITS.listItems,
  items: processorRef,
});

// --- probes: what the agent checks itself when spec.source is Probe ---

const probeActions: Record<string, Schema> = {
  exec: {
    type: 'object',
    title: 'ExecAction',
    description: 'Run a command; exit code 0 is healthy. Refused unless the agent configuration enables exec probes.',
    required: ['command'],
    properties: {
      command: {
        type: 'array',
        minItems: 1,
        maxItems: 256,
        description: 'The command and its arguments, run without a shell.',
        items: { type: 'string', maxLength: LIMITS.path },
      },
    },
  },
  httpGet: {
    type: 'object',
    title: 'HTTPGetAction',
    description: 'An HTTP GET; a status from 200 to 399 is healthy.',
    required: ['port'],
    properties: {
      host: str(LIMITS.name, 'Host to connect to; defaults to the node or pod IP.'),
      path: str(LIMITS.path, 'Path to request.'),
      port: intOrString('Port number or name.'),
      scheme: { type: 'string', enum: ['HTTP', 'HTTPS'], description: 'Defaults to HTTP.' },
      httpHeaders: {
        type: 'array',
        maxItems: LIMITS.listItems,
        description: 'Extra request headers.',
        items: {
          type: 'object',
          title: 'HTTPHeader',
          required: ['name', 'value'],
          properties: { name: str(256, 'Header name.'), value: str(LIMITS.path, 'Header value.') },
        },
      },
    },
  },
  tcpSocket: {
    type: 'object',
    title: 'TCPSocketAction',
    description: 'A TCP connection; connecting is healthy.',
    required: ['port'],
    properties: {
      host: str(LIMITS.name, 'Host to connect to; defaults to the node or pod IP.'),
      port: intOrString('Port number or name.'),
    },
  },
  timeoutSeconds: { type: 'integer', minimum: 1, maximum: 3600, description: 'Seconds before the probe counts as failed. Defaults to 1.' },
};

const nodeProbe: Schema = {
  type: 'object',
  title: 'NodeProbe',
  description: 'A probe run on the node itself. Exactly one of exec, httpGet, tcpSocket.',
  oneOf: exactlyOneOf('exec', 'httpGet', 'tcpSocket'),
  properties: probeActions,
};

const podProbe: Schema = {
  type: 'object',
  title: 'PodProbe',
  description: 'A probe run against a pod on the node: exec in one of its containers, or httpGet / tcpSocket to the pod. Exactly one of exec, httpGet, tcpSocket.',
  required: ['namespace', 'name'],
  oneOf: exactlyOneOf('exec', 'httpGet', 'tcpSocket'),
  properties: {
    namespace: str(63, 'Namespace of the pod.', { minLength: 1 }),
    name: str(LIMITS.name, 'Name of the pod.', { minLength: 1 }),
    container: str(63, 'Container to exec in; defaults to the first.'),
    ...probeActions,
  },
};

// --- the Abnormal ---

export const SOURCES = ['Log', 'KubernetesEvent', 'PrometheusAlert', 'Probe', 'Custom'] as const;
export const PHASES = ['InformationCollecting', 'Diagnosing', 'Recovering', 'Succeeded', 'Failed', 'Unknown'] as const;
export const CONDITION_TYPES = ['InformationCollected', 'Identified', 'Recovered'] as const;

const abnormalSpec: Schema = {
  type: 'object',
  title: 'AbnormalSpec',
  description: 'What went wrong, where, and how the agent should handle it. Owned by people and sources.',
  required: ['source', 'nodeName'],
  properties: {
    source: { type: 'string', enum: [...SOURCES], description: 'Which kind of symptom this is; the matching detail field says more.' },
    nodeName: str(LIMITS.name, 'The node this Abnormal concerns; only the agent on that node handles it.', {
      minLength: 1,
      pattern: DNS_SUBDOMAIN,
    }),
    log: {
      type: 'object',
      title: 'LogSource',
      description: 'For source Log: the line (or lines, for a multi-line match) that matched a rule.',
      properties: {
        filePath: str(LIMITS.path, 'Where the line was read: /dev/kmsg, a file path, or journald:UNIT.'),
        logEntry: str(LIMITS.logEntry, 'The matched text.'),
      },
    },
    kubernetesEvent: freeForm('For source KubernetesEvent: the core/v1 Event.'),
    prometheusAlert: {
      type: 'object',
      title: 'PrometheusAlert',
      description: 'For source PrometheusAlert: the alert as Alertmanager delivered it.',
      properties: {
        labels: stringMap('Alert labels.'),
        annotations: stringMap('Alert annotations.'),
        startsAt: time('When the alert started firing.'),
        endsAt: time('When the alert resolved, if it has.'),
        generatorURL: str(LIMITS.path, 'Link to the expression that fired.'),
      },
    },
    nodeProbe,
    podProbe,
    context: freeForm('Free-form input for the processors.'),
    occurrences: {
      type: 'object',
      title: 'Occurrences',
      description: 'Set by the symptom sources: how often this symptom was seen while the Abnormal was open or cooling down.',
      required: ['count'],
      properties: {
        count: { type: 'integer', minimum: 1, description: 'Times seen, the first included.' },
        firstSeen: time('When it was first seen.'),
        lastSeen: time('When it was last seen.'),
        endedAt: time('When its source last said it was over (a custom plugin\'s check passed again, an alert resolved); it is open again once seen after that.'),
      },
    },
    related: {
      type: 'array',
      maxItems: LIMITS.listItems,
      description: 'Set by the symptom sources: other symptoms about the same subject (the same pod) seen while this Abnormal was open or cooling down, joined here instead of becoming Abnormals of their own (one Abnormal per fault).',
      items: {
        type: 'object',
        title: 'RelatedSymptom',
        required: ['source', 'reason', 'count'],
        properties: {
          source: { type: 'string', enum: [...SOURCES], description: 'Which kind of symptom it was.' },
          reason: str(LIMITS.name, 'Its reason, e.g. the Event\'s.'),
          count: { type: 'integer', minimum: 1, description: 'Times seen.' },
          firstSeen: time('When it was first seen.'),
          lastSeen: time('When it was last seen.'),
          message: str(LIMITS.shortText, 'What it said, e.g. the Event\'s message.'),
        },
      },
    },
    skipDiagnosis: {
      type: 'boolean',
      description: 'Skip the diagnosers. Recoverers that need a confirmed diagnosis (all that kill, delete or restart) then refuse to act.',
    },
    skipRecovery: { type: 'boolean', description: 'Stop after diagnosis: the Abnormal succeeds without acting on the node.' },
    assignedInformationCollectors: processorRefList('InformationCollectors'),
    assignedDiagnosers: processorRefList('Diagnosers'),
    assignedRecoverers: processorRefList('Recoverers'),
  },
};

const condition: Schema = {
  type: 'object',
  title: 'AbnormalCondition',
  description: 'The outcome of one stage; lastTransitionTime changes only when status changes.',
  required: ['type', 'status'],
  properties: {
    type: { type: 'string', enum: [...CONDITION_TYPES], description: 'The stage: collecting, diagnosing, recovering.' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'], description: 'Whether the stage succeeded.' },
    lastTransitionTime: time('When status last changed.'),
    reason: str(LIMITS.shortText, 'A CamelCase word for why.'),
    message: str(LIMITS.message, 'What happened, for people.'),
  },
};

const abnormalStatus: Schema = {
  type: 'object',
  title: 'AbnormalStatus',
  description: 'How far the agent has got. Owned by the agent; written through the status subresource.',
  properties: {
    phase: { type: 'string', enum: [...PHASES], description: 'Absent until the agent accepts the Abnormal; moves forward only.' },
    conditions: { type: 'array', maxItems: CONDITION_TYPES.length, items: condition, description: 'One per stage reached.' },
    identifiable: { type: 'boolean', description: 'A diagnoser identified the fault.' },
    recoverable: { type: 'boolean', description: 'A recoverer recovered the fault.' },
    message: str(LIMITS.message, 'The latest human-readable summary.'),
    reason: str(LIMITS.shortText, 'A CamelCase word for the latest outcome.'),
    output: str(LIMITS.output, 'What the processors printed, truncated with a note when too long.'),
    startTime: time('When the agent accepted the Abnormal.'),
    diagnoser: { ...processorRef, description: 'The diagnoser that identified the fault.' },
    recoverer: { ...processorRef, description: 'The recoverer that recovered the fault.' },
    context: freeForm('Evidence gathered by the processors, by processor.'),
  },
};

// --- processors registered over HTTP ---

const processorSpec: Schema = {
  type: 'object',
  title: 'ProcessorSpec',
  description: 'Where an HTTP processor listens and how to trust it. Exactly one of url and service.',
  oneOf: [
    { required: ['url'], not: { anyOf: [{ required: ['path'] }, { required: ['scheme'] }] } },
    { required: ['service'] },
  ],
  properties: {
    url: str(LIMITS.path, 'Full URL of the processor, e.g. http://127.0.0.1:9000/diagnose (path and scheme must then be absent).', {
      pattern: '^https?://',
    }),
    service: {
      type: 'object',
      title: 'ServiceReference',
      description: 'A Service in front of the processor.',
      required: ['namespace', 'name'],
      properties: {
        namespace: str(63, 'Namespace of the Service.', { minLength: 1 }),
        name: str(63, 'Name of the Service.', { minLength: 1 }),
        port: { type: 'integer', minimum: 1, maximum: 65535, description: 'Port of the Service. Defaults to 80 (HTTP) or 443 (HTTPS).' },
      },
    },
    path: str(LIMITS.path, 'Path on the Service. Defaults to /.', { pattern: '^/' }),
    scheme: { type: 'string', enum: ['HTTP', 'HTTPS'], description: 'Scheme for the Service. Defaults to HTTP.' },
    timeoutSeconds: { type: 'integer', minimum: 1, maximum: 600, description: 'Seconds before a call fails. Defaults to 30.' },
    caBundle: str(64 * 1024, 'Base64-encoded PEM CA bundle to verify the processor with (HTTPS).', { format: 'byte' }),
    bearerTokenSecretRef: {
      type: 'object',
      title: 'SecretKeyReference',
      description: 'A Secret in the processor object\'s namespace whose key holds the bearer token to send.',
      required: ['name', 'key'],
      properties: { name: str(LIMITS.name, 'Name of the Secret.', { minLength: 1 }), key: str(LIMITS.name, 'Key in the Secret.', { minLength: 1 }) },
    },
  },
};

// --- the CustomResourceDefinitions ---

type PrinterColumn = { name: string; type: string; jsonPath: string; priority?: number; description?: string };

function crd(opts: {
  kind: string;
  plural: string;
  singular: string;
  shortNames?: string[];
  description: string;
  spec: Schema;
  status?: Schema;
  columns: PrinterColumn[];
}) {
  const properties: Record<string, Schema> = {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: { type: 'object' },
    spec: opts.spec,
  };
  if (opts.status) properties.status = opts.status;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${opts.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: opts.kind,
        listKind: `${opts.kind}List`,
        plural: opts.plural,
        singular: opts.singular,
        ...(opts.shortNames ? { shortNames: opts.shortNames } : {}),
        categories: [CATEGORY],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              title: opts.kind,
              description: opts.description,
              required: ['spec'],
              properties,
            },
          },
          ...(opts.status ? { subresources: { status: {} } } : {}),
          additionalPrinterColumns: opts.columns,
        },
      ],
    },
  };
}

const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export const abnormalCRD = crd({
  kind: 'Abnormal',
  plural: 'abnormals',
  singular: 'abnormal',
  shortNames: ['ab'],
  description: 'A symptom on one node, and how far nodemedic has got with diagnosing and recovering it.',
  spec: abnormalSpec,
  status: abnormalStatus,
  columns: [
    { name: 'Node', type: 'string', jsonPath: '.spec.nodeName' },
    { name: 'Source', type: 'string', jsonPath: '.spec.source' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Reason', type: 'string', jsonPath: '.status.reason' },
    { name: 'Count', type: 'integer', jsonPath: '.spec.occurrences.count' },
    age,
    { name: 'Diagnoser', type: 'string', jsonPath: '.status.diagnoser.name', priority: 1 },
    { name: 'Recoverer', type: 'string', jsonPath: '.status.recoverer.name', priority: 1 },
  ],
});

const processorColumns: PrinterColumn[] = [
  { name: 'URL', type: 'string', jsonPath: '.spec.url' },
  { name: 'Service', type: 'string', jsonPath: '.spec.service.name' },
  { name: 'Path', type: 'string', jsonPath: '.spec.path' },
  { name: 'Timeout', type: 'integer', jsonPath: '.spec.timeoutSeconds' },
  age,
];

const processorCRD = (kind: string, plural: string, role: string) =>
  crd({
    kind,
    plural,
    singular: kind.toLowerCase(),
    description: `Registers an HTTP ${role} with nodemedic.`,
    spec: processorSpec,
    columns: processorColumns,
  });

export const informationCollectorCRD = processorCRD('InformationCollector', PROCESSOR_PLURALS.InformationCollector, 'information collector');
export const diagnoserCRD = processorCRD('Diagnoser', PROCESSOR_PLURALS.Diagnoser, 'diagnoser');
export const recovererCRD = processorCRD('Recoverer', PROCESSOR_PLURALS.Recoverer, 'recoverer');

/** Every CRD, with the file name it is written to under manifests/crds/. */
export const ALL_CRDS = [
  { file: 'abnormal.yaml', crd: abnormalCRD },
  { file: 'informationcollector.yaml', crd: informationCollectorCRD },
  { file: 'diagnoser.yaml', crd: diagnoserCRD },
  { file: 'recoverer.yaml', crd: recovererCRD },
] as const;
