// The node's container runtime over CRI — the gRPC API the kubelet itself drives containerd or CRI-O
// with — for what only the runtime can do from the node: find a pod's running container and run a
// command inside it (exec pod probes, as the kubelet runs exec probes: ExecSync). Going through the
// runtime rather than the apiserver's pods/exec keeps the agent node-local: it needs no cluster-wide
// exec permission and can only reach containers on its own node.
//
// Only runtime.v1 is spoken (containerd ≥ 1.6, CRI-O ≥ 1.20; Kubernetes ≥ 1.26 requires it). The
// messages below are the few fields of k8s.io/cri-api's runtime/v1 api.proto this file uses, with
// that file's field numbers; protobuf ignores the fields left out.
import type { ChannelCredentials, Client, ServiceError } from '@grpc/grpc-js';

const RUNTIME_V1_SUBSET = `
syntax = "proto3";
package runtime.v1;
service RuntimeService {
  rpc ListPodSandbox(ListPodSandboxRequest) returns (ListPodSandboxResponse) {}
  rpc ListContainers(ListContainersRequest) returns (ListContainersResponse) {}
  rpc ExecSync(ExecSyncRequest) returns (ExecSyncResponse) {}
}
enum ContainerState { CONTAINER_CREATED = 0; CONTAINER_RUNNING = 1; CONTAINER_EXITED = 2; CONTAINER_UNKNOWN = 3; }
message ContainerStateValue { ContainerState state = 1; }
message ContainerFilter { string id = 1; ContainerStateValue state = 2; string pod_sandbox_id = 3; map<string, string> label_selector = 4; }
message ListContainersRequest { ContainerFilter filter = 1; }
message ListPodSandboxRequest {}
message PodSandbox { string id = 1; }
message ListPodSandboxResponse { repeated PodSandbox items = 1; }
message ContainerMetadata { string name = 1; uint32 attempt = 2; }
message Container { string id = 1; string pod_sandbox_id = 2; ContainerMetadata metadata = 3; ContainerState state = 6; int64 created_at = 7; map<string, string> labels = 8; }
message ListContainersResponse { repeated Container containers = 1; }
message ExecSyncRequest { string container_id = 1; repeated string cmd = 2; int64 timeout = 3; }
message ExecSyncResponse { bytes stdout = 1; bytes stderr = 2; int32 exit_code = 3; }
`;

/** The labels the kubelet puts on every container it creates through CRI. */
export const POD_LABELS = {
  namespace: 'io.kubernetes.pod.namespace',
  name: 'io.kubernetes.pod.name',
  uid: 'io.kubernetes.pod.uid',
  container: 'io.kubernetes.container.name',
} as const;

export type RuntimeContainer = { id: string; name: string; attempt: number; labels: Record<string, string> };
export type ExecResult = { exitCode: number; stdout: Buffer; stderr: Buffer };

/** An error from the runtime, with the gRPC status code (UNAVAILABLE = 14, DEADLINE_EXCEEDED = 4 …). */
export class CriError extends Error {
  constructor(message: string, readonly code: number | undefined) {
    super(message);
  }
}

const UNIMPLEMENTED = 12;
/** Time the runtime gets beyond the command's own timeout to answer before the call is given up. */
const ANSWER_GRACE_MS = 2_000;

type Unary<Req, Res> = (req: Req, options: { deadline: Date }, done: (err: ServiceError | null, res: Res) => void) => { cancel(): void };
type RuntimeServiceStub = Client & {
  ListPodSandbox: Unary<object, { items: Array<{ id: string }> }>;
  ListContainers: Unary<object, { containers: Array<{ id: string; metadata?: { name: string; attempt: number }; labels: Record<string, string> }> }>;
  ExecSync: Unary<object, { stdout: Buffer; stderr: Buffer; exitCode: number }>;
};

export class CriClient {
  #stub: Promise<RuntimeServiceStub> | undefined;

  /** endpoint as the kubelet's --container-runtime-endpoint: "unix:///run/containerd/containerd.sock". */
  constructor(readonly endpoint: string) {}

  /** Running containers of a pod, newest attempt first; `container` narrows to one container name. */
  async runningContainers(pod: { namespace: string; name: string; uid?: string; container?: string }, signal?: AbortSignal): Promise<RuntimeContainer[]> {
    const labelSelector: Record<string, string> = { [POD_LABELS.namespace]: pod.namespace, [POD_LABELS.name]: pod.name };
    if (pod.uid) labelSelector[POD_LABELS.uid] = pod.uid;
    if (pod.container) labelSelector[POD_LABELS.container] = pod.container;
    const res = await this.#call('ListContainers', { filter: { state: { state: 'CONTAINER_RUNNING' }, labelSelector } }, 10_000, signal);
    return res.containers
      .map((c) => ({ id: c.id, name: c.metadata?.name ?? c.labels[POD_LABELS.container] ?? '', attempt: c.metadata?.attempt ?? 0, labels: c.labels }))
      .sort((a, b) => b.attempt - a.attempt);
  }

  /** Every pod sandbox's and container's id the runtime knows, in any state (a shim's -id is one of them). */
  async knownIds(signal?: AbortSignal): Promise<Set<string>> {
    const [sandboxes, containers] = await Promise.all([
      this.#call('ListPodSandbox', {}, 10_000, signal),
      this.#call('ListContainers', {}, 10_000, signal),
    ]);
    return new Set([...sandboxes.items.map((s) => s.id), ...containers.containers.map((c) => c.id)]);
  }

  /** Runs cmd in the container and waits for it; the runtime ends it after timeoutSeconds. */
  async execSync(containerId: string, cmd: string[], timeoutSeconds: number, signal?: AbortSignal): Promise<ExecResult> {
    const seconds = Math.max(1, Math.ceil(timeoutSeconds)); // CRI counts whole seconds, and 0 would mean "no limit"
    const res = await this.#call('ExecSync', { containerId, cmd, timeout: seconds }, seconds * 1000 + ANSWER_GRACE_MS, signal);
    return { exitCode: res.exitCode, stdout: res.stdout, stderr: res.stderr };
  }

  async close(): Promise<void> {
    const stub = this.#stub;
    this.#stub = undefined;
    if (stub) (await stub.catch(() => undefined))?.close();
  }

  async #call<M extends 'ListPodSandbox' | 'ListContainers' | 'ExecSync'>(method: M, request: object, timeoutMs: number, signal?: AbortSignal) {
    const stub = await (this.#stub ??= connect(this.endpoint));
    signal?.throwIfAborted();
    type Res = Parameters<Parameters<RuntimeServiceStub[M]>[2]>[1];
    return new Promise<Res>((resolve, reject) => {
      const onAbort = () => call.cancel();
      const call = (stub[method] as Unary<object, Res>).call(stub, request, { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
        signal?.removeEventListener('abort', onAbort);
        if (!err) return resolve(res);
        const why = err.code === UNIMPLEMENTED
          ? `the runtime at ${this.endpoint} does not serve CRI runtime.v1 (containerd ≥ 1.6 and CRI-O ≥ 1.20 do): ${err.details}`
          : `CRI ${method} at ${this.endpoint}: ${err.details || err.message}`;
        reject(new CriError(why, err.code));
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** gRPC and the protobuf parser are loaded on first use: most nodes never run an exec pod probe. */
async function connect(endpoint: string): Promise<RuntimeServiceStub> {
  const [grpc, { fromJSON }, protobuf] = await Promise.all([import('@grpc/grpc-js'), import('@grpc/proto-loader'), import('protobufjs')]);
  const definition = fromJSON(protobuf.default.parse(RUNTIME_V1_SUBSET).root.toJSON(), { longs: Number, enums: String, defaults: true });
  const runtime = (grpc.loadPackageDefinition(definition) as unknown as { runtime: { v1: { RuntimeService: new (target: string, credentials: ChannelCredentials) => RuntimeServiceStub } } }).runtime.v1;
  return new runtime.RuntimeService(endpoint, grpc.credentials.createInsecure());
}
