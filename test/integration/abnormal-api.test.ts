// The Abnormal API against a real kube-apiserver: create, get, list by label, watch, the status
// subresource, and the schema's rejections (which agent/api/validate.ts must agree with).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Watch } from '@kubernetes/client-node';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { ValidationError, validateAbnormal } from '../../agent/api/validate.js';
import { INVALID_SPECS, VALID_SPECS } from '../fixtures/abnormals.js';
import { waitFor } from '../helpers/wait.js';
import {
  ABNORMALS, GROUP, VERSION, abnormal, apiCode, apiMessage, createAbnormal, customObjects, getAbnormal, kubeConfig, testNamespace,
} from '../helpers/kube.js';

const ns = await testNamespace('api');
const api = customObjects();
const NODE_LABEL = 'nodemedic.io/node';

describe('create, get and list', () => {
  test('every valid kind of Abnormal round-trips unchanged', async () => {
    let i = 0;
    for (const [what, spec] of Object.entries(VALID_SPECS)) {
      const created = await createAbnormal(abnormal(`valid-${i++}`, ns, spec));
      assert.deepEqual(created.spec, spec, what);
      const read = await getAbnormal(ns, created.metadata!.name!);
      assert.deepEqual(read.spec, spec, what);
      assert.equal(read.status, undefined, 'a new Abnormal has no status: not yet accepted');
    }
  });

  test('a label selector lists only the matching node\'s Abnormals', async () => {
    await createAbnormal(abnormal('on-a-1', ns, { nodeName: 'node-a' }, { [NODE_LABEL]: 'node-a' }));
    await createAbnormal(abnormal('on-a-2', ns, { nodeName: 'node-a' }, { [NODE_LABEL]: 'node-a' }));
    // A node of this run's own: a cluster-wide list must not see other runs' leftovers.
    const nodeB = `node-b-${ns}`;
    await createAbnormal(abnormal('on-b-1', ns, { nodeName: nodeB }, { [NODE_LABEL]: nodeB }));
    const list = (await api.listNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, labelSelector: `${NODE_LABEL}=node-a`,
    })) as { items: Abnormal[] };
    assert.deepEqual(list.items.map((a) => a.metadata!.name).sort(), ['on-a-1', 'on-a-2']);
    const all = (await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: ABNORMALS, labelSelector: `${NODE_LABEL}=${nodeB}` })) as { items: Abnormal[] };
    assert.deepEqual(all.items.map((a) => `${a.metadata!.namespace}/${a.metadata!.name}`), [`${ns}/on-b-1`]);
  });
});

describe('the status subresource', () => {
  const replaceStatus = (body: Abnormal) =>
    api.replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: body.metadata!.name!, body }) as Promise<Abnormal>;

  test('status is written through /status, and spec changes sent there are ignored', async () => {
    const created = await createAbnormal(abnormal('status-1', ns));
    const updated = await replaceStatus({
      ...created,
      spec: { ...created.spec, nodeName: 'node-z' },
      status: { phase: 'InformationCollecting', startTime: '2026-11-23T07:00:00Z', conditions: [{ type: 'InformationCollected', status: 'False', reason: 'Collecting' }] },
    });
    assert.equal(updated.status?.phase, 'InformationCollecting');
    const read = await getAbnormal(ns, 'status-1');
    assert.equal(read.status?.phase, 'InformationCollecting');
    assert.equal(read.status?.conditions?.[0]?.reason, 'Collecting');
    assert.equal(read.spec.nodeName, 'node-a', 'spec is not writable through /status');
  });

  test('a status sent with the main resource does not change status', async () => {
    const created = await createAbnormal(abnormal('status-2', ns));
    await replaceStatus({ ...created, status: { phase: 'Diagnosing' } });
    const current = await getAbnormal(ns, 'status-2');
    const replaced = (await api.replaceNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'status-2',
      body: { ...current, spec: { ...current.spec, skipRecovery: true }, status: { phase: 'Succeeded', reason: 'Forged' } },
    })) as Abnormal;
    assert.equal(replaced.spec.skipRecovery, true, 'spec is writable through the main resource');
    const read = await getAbnormal(ns, 'status-2');
    assert.equal(read.status?.phase, 'Diagnosing');
    assert.equal(read.status?.reason, undefined);
  });

  test('an invalid status is rejected naming the field', async () => {
    const created = await createAbnormal(abnormal('status-3', ns));
    await assert.rejects(replaceStatus({ ...created, status: { phase: 'Done' as never } }), (err: unknown) => {
      assert.equal(apiCode(err), 422);
      assert.match(apiMessage(err), /status\.phase/);
      return true;
    });
  });

  test('a stale resourceVersion is a conflict, not a lost write', async () => {
    const created = await createAbnormal(abnormal('status-4', ns));
    await replaceStatus({ ...created, status: { phase: 'InformationCollecting' } });
    await assert.rejects(replaceStatus({ ...created, status: { phase: 'Failed' } }), (err: unknown) => apiCode(err) === 409);
    assert.equal((await getAbnormal(ns, 'status-4')).status?.phase, 'InformationCollecting');
  });
});

test('a watch sees ADDED, MODIFIED and DELETED in order', async () => {
  const list = (await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS })) as {
    metadata: { resourceVersion: string };
  };
  const seen: string[] = [];
  const controller = await new Watch(kubeConfig()).watch(
    `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${ABNORMALS}`,
    { resourceVersion: list.metadata.resourceVersion, fieldSelector: 'metadata.name=watched' },
    (type, object: Abnormal) => {
      seen.push(`${type} ${object.status?.phase ?? '-'}`);
    },
    () => {},
  );
  try {
    const created = await createAbnormal(abnormal('watched', ns));
    await api.replaceNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'watched', body: { ...created, status: { phase: 'Diagnosing' } },
    });
    await api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: ABNORMALS, name: 'watched' });
    await waitFor('the deletion seen by the watch', async () => seen.some((event) => event.startsWith('DELETED')) || undefined, 15_000);
    assert.deepEqual(seen, ['ADDED -', 'MODIFIED Diagnosing', 'DELETED Diagnosing']);
  } finally {
    controller.abort();
  }
});

describe('the apiserver rejects invalid Abnormals, naming the field, and the validator agrees', () => {
  INVALID_SPECS.forEach(({ what, spec, field }, i) => {
    test(what, async () => {
      const body = abnormal(`invalid-${i}`, ns, spec as Abnormal['spec']);
      body.spec = spec as Abnormal['spec']; // exactly the invalid spec, no defaults merged in
      await assert.rejects(createAbnormal(body), (err: unknown) => {
        assert.equal(apiCode(err), 422, apiMessage(err));
        // kube-apiserver 1.20 names list items without their index (spec.assignedDiagnosers.name).
        const apiField = field.replace(/\[\d+\]/g, '');
        assert.ok(apiMessage(err).includes(apiField), `apiserver's message does not name ${apiField}: ${apiMessage(err)}`);
        return true;
      });
      assert.throws(() => validateAbnormal(body), (err: unknown) => err instanceof ValidationError && err.message.includes(field));
    });
  });
});
