import type { ItemWriter } from '../types.js';
import { addItemsBatch } from './batch.js';
import type { IpRunner } from './ip.js';
import { parseAddresses } from './ipjson.js';
import type { DatapathMonitor } from './monitor.js';
import { planRestore } from './writer.js';

/**
 * The restore's writer: plans against this host's addresses now (and the live routes that cover
 * gateways), then writes every item with one `ip -force -batch` process per family.
 */
export function ipItemWriter(ip: IpRunner, datapath: Pick<DatapathMonitor, 'lastSnapshot'>, ipConfig: { argv: string[]; timeoutMs: number }): ItemWriter {
  return {
    plan: async (items) => {
      const listing = await ip(['-j', 'addr', 'show']);
      const addresses = listing.ok ? parseAddresses(listing.stdout) : undefined;
      const last = datapath.lastSnapshot();
      return planRestore(items, addresses?.ok ? addresses.items : (last?.addresses ?? []), last?.routes ?? []);
    },
    write: (items, signal) => addItemsBatch(ipConfig.argv, items, { timeoutMs: ipConfig.timeoutMs, signal }),
  };
}
