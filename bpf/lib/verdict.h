/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Verdicts: counting, drop sampling, and the tc return codes. */
#ifndef VPBLU_VERDICT_H
#define VPBLU_VERDICT_H

#include "common.h"
#include "maps.h"
#include "parse.h"

/* Passing returns TC_ACT_UNSPEC (TCX_NEXT): the packet goes on through the
 * rest of the tc chain (other tcx programs, then classic filters) and is
 * accepted when nothing else decides. TC_ACT_OK would end the chain and
 * skip programs a CNI attached after ours. Dropping is TC_ACT_SHOT. */
#define VPBLU_TC_PASS TC_ACT_UNSPEC
#define VPBLU_TC_DROP TC_ACT_SHOT

static __always_inline void vpblu_count(__u32 hook, __u32 verdict, __u32 reason)
{
	__u32 idx = (hook * VPBLU_VERDICT_MAX + verdict) * VPBLU_REASON_MAX + reason;
	__u64 *n = bpf_map_lookup_elem(&vpblu_counters, &idx);

	if (n)
		*n += 1;
}

/* vpblu_pass counts a pass and returns the tc code for it. */
static __always_inline int vpblu_pass(__u32 hook, __u32 reason)
{
	vpblu_count(hook, VPBLU_VERDICT_PASS, reason);
	return VPBLU_TC_PASS;
}

/* vpblu_sample sends one drop to the ring buffer. It is a function of its
 * own, not inlined, so the extension header walk exists once in the
 * program instead of at every drop site. */
static __noinline int vpblu_sample(struct __sk_buff *skb, const struct vpblu_pkt *p, __u32 hook,
				   __u32 reason)
{
	struct vpblu_drop *e;

	e = bpf_ringbuf_reserve(&vpblu_drops, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->ktime_ns = bpf_ktime_get_ns();
	e->ifindex = skb->ifindex;
	e->hook = hook;
	e->verdict = VPBLU_VERDICT_DROP;
	e->reason = reason;
	e->family = p->family;
	__builtin_memcpy(e->src, p->src, 16);
	__builtin_memcpy(e->dst, p->dst, 16);
	vpblu_l4(skb, p, &e->proto, &e->sport, &e->dport);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* vpblu_drop counts a drop, sends 1 in cfg->drop_sample of them to the
 * ring buffer, and returns the tc code for it. */
static __always_inline int vpblu_drop(struct __sk_buff *skb, const struct vpblu_config *cfg,
				      const struct vpblu_pkt *p, __u32 hook, __u32 reason)
{
	__u32 rate = cfg ? cfg->drop_sample : 0;

	vpblu_count(hook, VPBLU_VERDICT_DROP, reason);
	if (rate != 0 && (rate == 1 || bpf_get_prandom_u32() % rate == 0))
		vpblu_sample(skb, p, hook, reason);
	return VPBLU_TC_DROP;
}

#endif /* VPBLU_VERDICT_H */
