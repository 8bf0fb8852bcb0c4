// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
//go:build ignore

/* classify: tc ingress of each pod's host-side veth, that is, pod egress.
 *
 * Verdicts, first match wins:
 *   not IP, or IP header unreadable  -> pass unchanged
 *   a block rule matches             -> drop
 *   destination is a local pod CIDR  -> pass
 *   destination is a remote CIDR:
 *     this node or that node isolated -> drop
 *     that node's tunnel is ready     -> steer: skb->mark = the CIDR's mark
 *     otherwise                       -> no tunnel (below)
 *   destination in a cluster CIDR:
 *     this node isolated              -> drop
 *     otherwise                       -> no tunnel (below)
 *   anything else                    -> pass
 * No tunnel: drop when strict, pass otherwise.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/policy.h"
#include "lib/verdict.h"

char __license[] SEC("license") = "Dual BSD/GPL";

static __always_inline int no_tunnel(struct __sk_buff *skb, const struct vpblu_config *cfg,
				     const struct vpblu_pkt *p)
{
	if (cfg && (cfg->flags & VPBLU_CONFIG_STRICT))
		return vpblu_drop(skb, cfg, p, VPBLU_HOOK_CLASSIFY, VPBLU_REASON_NO_TUNNEL);
	return vpblu_pass(VPBLU_HOOK_CLASSIFY, VPBLU_REASON_NO_TUNNEL);
}

SEC("tc")
int vpblu_classify(struct __sk_buff *skb)
{
	const struct vpblu_config *cfg;
	struct vpblu_remote *remote;
	struct vpblu_pkt p = {};
	__u32 slot, self, node;
	int rc;

	rc = vpblu_parse_eth(skb, &p);
	if (rc != VPBLU_PARSE_OK)
		return vpblu_pass(VPBLU_HOOK_CLASSIFY,
				  rc == VPBLU_PARSE_NON_IP ? VPBLU_REASON_NON_IP : VPBLU_REASON_MALFORMED);

	slot = vpblu_slot();
	cfg = bpf_map_lookup_elem(&vpblu_config, &slot);
	self = cfg ? cfg->flags : 0;

	if (vpblu_blocked(slot, &p))
		return vpblu_drop(skb, cfg, &p, VPBLU_HOOK_CLASSIFY, VPBLU_REASON_BLOCK);

	if (vpblu_lpm(&vpblu_local4, &vpblu_local6, slot, &p, p.dst))
		return vpblu_pass(VPBLU_HOOK_CLASSIFY, VPBLU_REASON_LOCAL);

	remote = vpblu_lpm(&vpblu_remote4, &vpblu_remote6, slot, &p, p.dst);
	if (remote) {
		node = vpblu_node_flags(slot, remote->node);
		if ((self & VPBLU_CONFIG_ISOLATED) || (node & VPBLU_NODE_ISOLATED))
			return vpblu_drop(skb, cfg, &p, VPBLU_HOOK_CLASSIFY, VPBLU_REASON_ISOLATED);
		if (node & VPBLU_NODE_READY) {
			skb->mark = remote->mark;
			vpblu_count(VPBLU_HOOK_CLASSIFY, VPBLU_VERDICT_STEER, VPBLU_REASON_TUNNEL);
			return VPBLU_TC_PASS;
		}
		return no_tunnel(skb, cfg, &p);
	}

	if (vpblu_lpm(&vpblu_cluster4, &vpblu_cluster6, slot, &p, p.dst)) {
		if (self & VPBLU_CONFIG_ISOLATED)
			return vpblu_drop(skb, cfg, &p, VPBLU_HOOK_CLASSIFY, VPBLU_REASON_ISOLATED);
		return no_tunnel(skb, cfg, &p);
	}

	return vpblu_pass(VPBLU_HOOK_CLASSIFY, VPBLU_REASON_OTHER);
}
