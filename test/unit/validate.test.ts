import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { API_VERSION } from '../../agent/api/crds.js';
import { ValidationError, validateAbnormal, validateAbnormalStatus, validateProcessor } from '../../agent/api/validate.js';
import { REPO_ROOT } from '../../scripts/gen-api.js';
import { INVALID_SPECS, VALID_SPECS } from '../fixtures/abnormals.js';

const wrap = (spec: unknown) => ({ apiVersion: API_VERSION, kind: 'Abnormal', metadata: { name: 'x' }, spec });

/** The problems a validator reports, or fails the test if it accepts. */
function problems(validate: (v: unknown) => unknown, value: unknown): string[] {
  try {
    validate(value);
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${err}`);
    return err.problems;
  }
  assert.fail(`accepted ${JSON.stringify(value).slice(0, 200)}`);
}

describe('validateAbnormal', () => {
  for (const [what, spec] of Object.entries(VALID_SPECS)) {
    test(`accepts ${what}`, () => {
      assert.deepEqual(validateAbnormal(wrap(spec)), wrap(spec));
    });
  }

  for (const { what, spec, field } of INVALID_SPECS) {
    test(`rejects ${what}, naming ${field}`, () => {
      const found = problems(validateAbnormal, wrap(spec));
      assert.ok(found.some((p) => p.startsWith(`${field}: `)), `no problem names ${field}: ${found.join(' | ')}`);
    });
  }

  test('says exactly what is wrong, one line per problem', () => {
    assert.deepEqual(problems(validateAbnormal, wrap({ source: 'Gossip', nodeName: 'node-a', skipDiagnosys: true })), [
      'spec.skipDiagnosys: unknown field',
      'spec.source: must be one of Log, KubernetesEvent, PrometheusAlert, Probe, Custom (got "Gossip")',
    ]);
    assert.deepEqual(
      problems(validateAbnormal, wrap({ ...VALID_SPECS['a node probe'], nodeProbe: { exec: { command: ['true'] }, tcpSocket: { port: 1 } } })),
      ['spec.nodeProbe: must set exactly one of exec, httpGet, tcpSocket'],
    );
    assert.deepEqual(problems(validateAbnormal, wrap({ source: 'Custom', nodeName: 'n', log: { logEntry: 'x'.repeat(70000) } })), [
      'spec.log.logEntry: must be at most 65536 characters (got 70000)',
    ]);
    assert.deepEqual(problems(validateAbnormal, wrap({ source: 'Probe', nodeName: 'n', nodeProbe: { tcpSocket: { port: [] } } })), [
      'spec.nodeProbe.tcpSocket.port: must be a port number or name (got [])',
    ]);
  });

  test('rejects what is not an object at all', () => {
    for (const value of [null, 'abnormal', 42, [], undefined]) {
      assert.ok(problems(validateAbnormal, value).some((p) => /must be an object/.test(p)), String(value));
    }
    assert.deepEqual(problems(validateAbnormal, { metadata: {} }), ['spec: is required']);
  });

  test('preserves unknown fields only where the schema says so', () => {
    const spec = { ...VALID_SPECS['a Kubernetes event']!, context: { anything: { at: ['all'] } } };
    assert.doesNotThrow(() => validateAbnormal(wrap(spec)));
    assert.deepEqual(problems(validateAbnormal, wrap({ ...spec, log: { filePath: '/x', line: 3 } })), ['spec.log.line: unknown field']);
  });
});

describe('validateAbnormalStatus (what processors send back)', () => {
  test('accepts a full status', () => {
    const status = {
      phase: 'Diagnosing', identifiable: true, reason: 'ShimDeadlock', message: 'the shim is stuck', output: 'dump',
      startTime: '2026-11-23T07:00:00Z', diagnoser: { namespace: 'nodemedic-system', name: 'shim' },
      conditions: [{ type: 'Identified', status: 'True', lastTransitionTime: '2026-11-23T07:00:01Z' }],
      context: { shim: { pid: 4242 } },
    };
    assert.deepEqual(validateAbnormalStatus(status), status);
  });

  test('names the field under status', () => {
    assert.deepEqual(problems(validateAbnormalStatus, { phase: 'Done', conditions: [{ type: 'Identified' }] }), [
      'status.conditions[0].status: is required',
      'status.phase: must be one of InformationCollecting, Diagnosing, Recovering, Succeeded, Failed, Unknown (got "Done")',
    ]);
    assert.deepEqual(problems(validateAbnormalStatus, { output: 'x'.repeat(256 * 1024 + 1) }), [
      'status.output: must be at most 262144 characters (got 262145)',
    ]);
  });
});

describe('validateProcessor', () => {
  const processor = (spec: unknown) => ({ apiVersion: API_VERSION, kind: 'Diagnoser', metadata: { name: 'd' }, spec });

  test('accepts a URL or a Service', () => {
    assert.doesNotThrow(() => validateProcessor(processor({ url: 'http://127.0.0.1:9000/diagnose', timeoutSeconds: 5 })));
    assert.doesNotThrow(() =>
      validateProcessor(processor({
        service: { namespace: 'ops', name: 'diag', port: 8443 }, path: '/d', scheme: 'HTTPS',
        caBundle: Buffer.from('-----BEGIN CERTIFICATE-----').toString('base64'), bearerTokenSecretRef: { name: 's', key: 'token' },
      })),
    );
  });

  test('rejects both or neither of url and service, and path or scheme beside a url', () => {
    const oneOf = ['spec: must set exactly one of url, service'];
    assert.deepEqual(problems(validateProcessor, processor({ timeoutSeconds: 5 })), oneOf);
    assert.deepEqual(problems(validateProcessor, processor({ url: 'http://a', service: { namespace: 'a', name: 'b' } })), oneOf);
    assert.deepEqual(problems(validateProcessor, processor({ url: 'http://a', path: '/x' })), oneOf);
  });

  test('names bad fields', () => {
    assert.deepEqual(problems(validateProcessor, processor({ url: 'ftp://a', caBundle: 'not base64!', timeoutSeconds: 0 })), [
      'spec.caBundle: must be a byte string (got "not base64!")',
      'spec.timeoutSeconds: must be >= 1 (got 0)',
      'spec.url: must match ^https?:// (got "ftp://a")',
    ]);
  });
});

test('every example manifest is valid', async () => {
  const dir = path.join(REPO_ROOT, 'manifests/examples');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 2, 'examples exist');
  for (const file of files) {
    for (const doc of parseAllDocuments(await readFile(path.join(dir, file), 'utf8'))) {
      const object = doc.toJS();
      const validate = object.kind === 'Abnormal' ? validateAbnormal : validateProcessor;
      assert.doesNotThrow(() => validate(object), `${file}: ${object.kind} ${object.metadata?.name}`);
    }
  }
});
