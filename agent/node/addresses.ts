// This node's network addresses and the kinds of address a probe must not be pointed at. With
// hostNetwork, the agent's interfaces are the node's.
import { BlockList, isIP } from 'node:net';
import os from 'node:os';

/** Every address on this node's interfaces, loopback included. */
export function nodeAddresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((a) => normalize(a.address)));
}

/** An address as written for comparison: IPv4-mapped IPv6 as plain IPv4, lower case, no zone. */
export function normalize(ip: string): string {
  const bare = ip.replace(/%.*$/, '').toLowerCase();
  return bare.startsWith('::ffff:') && isIP(bare.slice(7)) === 4 ? bare.slice(7) : bare;
}

const family = (ip: string) => (isIP(ip) === 6 ? 'ipv6' : 'ipv4');

/** Link-local addresses (169.254.0.0/16, fe80::/10): where clouds put their metadata services. */
const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4');
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');

/** Metadata services outside link-local: AWS's IPv6 one, Alibaba's, Oracle's. */
const METADATA = new BlockList();
METADATA.addAddress('fd00:ec2::254', 'ipv6');
METADATA.addAddress('100.100.100.200', 'ipv4');
METADATA.addAddress('192.0.0.192', 'ipv4');

export const isLinkLocal = (ip: string) => isIP(ip) !== 0 && LINK_LOCAL.check(normalize(ip), family(normalize(ip)));
export const isCloudMetadata = (ip: string) => isIP(ip) !== 0 && (METADATA.check(normalize(ip), family(normalize(ip))) || isLinkLocal(ip));

/** "10.0.0.0/8", "fd00::/8" or a single address, as a BlockList; throws on what is neither. */
export function cidrList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address = '', bits] = cidr.split('/');
    const kind = isIP(address);
    if (kind === 0) throw new Error(`${cidr} is not an address or CIDR`);
    if (bits === undefined) list.addAddress(address, family(address));
    else list.addSubnet(address, Number(bits), family(address));
  }
  return list;
}
