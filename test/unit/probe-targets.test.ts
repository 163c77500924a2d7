// Where a probe may be pointed (collectors/probe.ts): the rule on addresses alone, so that no test
// ever sends a packet to an address that is not this machine's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cidrList, nodeAddresses } from '../../agent/node/addresses.js';
import { targetRefusal } from '../../collectors/probe.js';

const own = ['127.0.0.1', '::1', '10.1.2.3'];

test('security: a node probe reaches this node\'s own addresses, loopback included, and nothing else', () => {
  for (const ip of ['127.0.0.1', '127.0.0.53', '::1', '10.1.2.3', '::ffff:10.1.2.3']) assert.equal(targetRefusal(ip, own, true), undefined, ip);
  assert.match(targetRefusal('192.0.2.1', own, true) ?? '', /192\.0\.2\.1 is not an address of this node/);
  assert.match(targetRefusal('10.1.2.4', own, true) ?? '', /not an address of this node/);
  assert.ok(nodeAddresses().includes('127.0.0.1'), 'this machine\'s own addresses are read from its interfaces');
});

test('security: link-local and cloud metadata addresses are refused even where they are the node\'s or the pod\'s, unless allowed besides', () => {
  for (const ip of ['169.254.169.254', '::ffff:169.254.169.254', 'fe80::1', 'fd00:ec2::254', '100.100.100.200', '192.0.0.192']) {
    assert.match(targetRefusal(ip, [ip], true) ?? '', /link-local or cloud metadata address/, ip);
    assert.match(targetRefusal(ip, [ip], false) ?? '', /link-local or cloud metadata address/, ip);
  }
  assert.equal(targetRefusal('169.254.169.254', own, true, cidrList(['169.254.169.254'])), undefined, 'an operator may allow one by name');
});

test('security: a pod probe reaches the probed pod\'s IPs only: not the node\'s loopback, not another pod', () => {
  const pod = ['10.244.1.7', 'fd00:10:244::7'];
  assert.equal(targetRefusal('10.244.1.7', pod, false), undefined);
  assert.equal(targetRefusal('fd00:10:244::7', pod, false), undefined);
  assert.match(targetRefusal('127.0.0.1', pod, false) ?? '', /127\.0\.0\.1 is not an IP of the probed pod/);
  assert.match(targetRefusal('10.244.1.8', pod, false) ?? '', /not an IP of the probed pod/);
  assert.equal(targetRefusal('10.244.1.8', pod, false, cidrList(['10.244.0.0/16'])), undefined, 'allowed besides by CIDR');
});

test('allowedTargets takes addresses and CIDRs, and says what it cannot read', () => {
  assert.doesNotThrow(() => cidrList(['10.0.0.0/8', '192.0.2.1', 'fd00::/8']));
  assert.throws(() => cidrList(['metadata.google.internal']), /is not an address or CIDR/);
});
