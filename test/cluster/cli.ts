// `npm run cluster`: start the test cluster by hand and keep it until Ctrl-C, e.g. to try kubectl
// against the CRDs or to run the suite repeatedly (NODEMEDIC_TEST_KUBECONFIG=... npm test).
import { startCluster } from './cluster.js';

const dirFlag = process.argv.indexOf('--dir');
const cluster = await startCluster({ keep: true, ...(dirFlag > 0 ? { dir: process.argv[dirFlag + 1]! } : {}) });
console.log(`kube-apiserver ready at ${cluster.server}; state and logs in ${cluster.dir}
  export KUBECONFIG=${cluster.kubeconfigs.admin}
  export PATH=${cluster.binDir}:$PATH     # kubectl v1.20.2
kubeconfigs for the other identities: ${cluster.kubeconfigs.agent}, ${cluster.kubeconfigs.unprivileged}
Ctrl-C stops it.`);
await new Promise<void>((resolve) => {
  process.once('SIGINT', resolve);
  process.once('SIGTERM', resolve);
});
await cluster.stop();
