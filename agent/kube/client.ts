// The Kubernetes client for the parts of the agent that talk to a cluster. Everything under agent/kube
// is imported only once the kube store is chosen: @kubernetes/client-node alone adds about 70 MiB of
// resident memory, which a file-store agent never pays.
import { ApiException, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';

/** The kubeconfig at `file`; absent: in-cluster, else $KUBECONFIG, else ~/.kube/config. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

/** The HTTP status of a failed API call, or undefined for a failure that is not the apiserver's answer. */
export const apiStatus = (err: unknown): number | undefined => (err instanceof ApiException ? err.code : undefined);

/** The apiserver's own message for a failed call (its Status), else the error's. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const status = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as { message?: unknown };
      if (typeof status?.message === 'string') return status.message;
    } catch {
      // not JSON
    }
  }
  return (err as Error).message;
}

/** Reads a pod; undefined when there is none of that name. */
export function podReader(kc: KubeConfig): (namespace: string, name: string) => Promise<V1Pod | undefined> {
  const core = kc.makeApiClient(CoreV1Api);
  return async (namespace, name) => {
    try {
      return await core.readNamespacedPod({ namespace, name });
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  };
}
