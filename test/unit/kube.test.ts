// How the agent says a watch failed: one line an operator can act on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { watchErrorText } from '../../agent/kube/informer.js';

test('a watch failure is one line: the apiserver\'s message, or for an API it does not serve, what is missing', () => {
  // On 41d8c2e an apiserver without nodemedic's CRDs gave "HTTP 404: HTTP-Code: 404\nMessage: Unknown API Status Code!\nBody: …" every second.
  const notServed = { code: 404, body: '404 page not found\n', message: 'HTTP-Code: 404\nMessage: Unknown API Status Code!\nBody: "404 page not found\\n"' };
  assert.equal(watchErrorText(notServed), "HTTP 404: this apiserver does not serve it — are nodemedic's CRDs installed? (kubectl apply -f manifests/crds/)");
  const forbidden = { code: 403, body: JSON.stringify({ kind: 'Status', message: 'abnormals.nodemedic.io is forbidden: User "x" cannot list resource "abnormals"' }), message: 'HTTP-Code: 403\nMessage: …' };
  assert.equal(watchErrorText(forbidden), 'HTTP 403: abnormals.nodemedic.io is forbidden: User "x" cannot list resource "abnormals"');
  assert.equal(watchErrorText(new Error('connect ECONNREFUSED 127.0.0.1:6443\n    at …')), 'connect ECONNREFUSED 127.0.0.1:6443');
});
