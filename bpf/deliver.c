// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
//go:build ignore

/* deliver: tc ingress of the WireGuard interface, that is, decrypted
 * traffic from other nodes. The interface is an L3 device: packets start
 * at the IP header and skb->protocol says which family.
 *
 * Verdicts, first match wins:
 *   not IP, or IP header unreadable   -> pass unchanged
 *   a block rule matches              -> drop (holds before the sender has it)
 *   source is a remote CIDR of an isolated node, or this node is isolated
 *   and the source is a remote or cluster CIDR -> drop
 *   anything else                     -> pass
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/policy.h"
#include "lib/verdict.h"

char __license[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int vpblu_deliver(struct __sk_buff *skb)
{
	const struct vpblu_config *cfg;
	struct vpblu_remote *remote;
	struct vpblu_pkt p = {};
	__u32 slot, self;
	int rc;

	rc = vpblu_parse_ip(skb, skb->protocol, 0, &p);
	if (rc != VPBLU_PARSE_OK)
		return vpblu_pass(VPBLU_HOOK_DELIVER,
				  rc == VPBLU_PARSE_NON_IP ? VPBLU_REASON_NON_IP : VPBLU_REASON_MALFORMED);

	slot = vpblu_slot();
	cfg = bpf_map_lookup_elem(&vpblu_config, &slot);
	self = cfg ? cfg->flags : 0;

	if (vpblu_blocked(slot, &p))
		return vpblu_drop(skb, cfg, &p, VPBLU_HOOK_DELIVER, VPBLU_REASON_BLOCK);

	remote = vpblu_lpm(&vpblu_remote4, &vpblu_remote6, slot, &p, p.src);
	if (remote && (vpblu_node_flags(slot, remote->node) & VPBLU_NODE_ISOLATED))
		return vpblu_drop(skb, cfg, &p, VPBLU_HOOK_DELIVER, VPBLU_REASON_ISOLATED);
	if ((self & VPBLU_CONFIG_ISOLATED) &&
	    (remote || vpblu_lpm(&vpblu_cluster4, &vpblu_cluster6, slot, &p, p.src)))
		return vpblu_drop(skb, cfg, &p, VPBLU_HOOK_DELIVER, VPBLU_REASON_ISOLATED);

	return vpblu_pass(VPBLU_HOOK_DELIVER, VPBLU_REASON_TUNNEL);
}
