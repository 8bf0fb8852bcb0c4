/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Policy lookups. Every lookup goes through the slot read once per packet,
 * so a packet is judged by one complete policy. */
#ifndef VPBLU_POLICY_H
#define VPBLU_POLICY_H

#include "common.h"
#include "maps.h"
#include "parse.h"

/* VPBLU_LOOKUP looks key up in the slot's inner map of outer. */
#define VPBLU_LOOKUP(outer, slot, key)                                  \
	({                                                              \
		void *__inner = bpf_map_lookup_elem(outer, &(slot));    \
		__inner ? bpf_map_lookup_elem(__inner, key) : NULL;     \
	})

/* vpblu_slot returns the slot of the policy in force. */
static __always_inline __u32 vpblu_slot(void)
{
	__u32 zero = 0;
	__u32 *slot = bpf_map_lookup_elem(&vpblu_active, &zero);

	return slot ? (*slot & 1) : 0;
}

/* vpblu_lpm looks a host address of p's family up in outer4 or outer6. */
#define vpblu_lpm(outer4, outer6, slot, p, a)                           \
	({                                                              \
		void *__v;                                              \
		if ((p)->family == 4) {                                 \
			struct vpblu_lpm4 __k = {.prefixlen = 32};      \
			__builtin_memcpy(__k.addr, (a), 4);             \
			__v = VPBLU_LOOKUP(outer4, slot, &__k);         \
		} else {                                                \
			struct vpblu_lpm6 __k = {.prefixlen = 128};     \
			__builtin_memcpy(__k.addr, (a), 16);            \
			__v = VPBLU_LOOKUP(outer6, slot, &__k);         \
		}                                                       \
		__v;                                                    \
	})

/* vpblu_blocked runs the two block stages of core/blocks: the longest
 * source prefix gives a class, then the class's destinations are matched,
 * inline or through the (class, destination) trie. */
static __always_inline int vpblu_blocked(__u32 slot, const struct vpblu_pkt *p)
{
	if (p->family == 4) {
		struct vpblu_lpm4 src = {.prefixlen = 32};
		struct vpblu_class4 *c;
		__u32 dst, addr, mask;

		__builtin_memcpy(src.addr, p->src, 4);
		c = VPBLU_LOOKUP(&vpblu_block_src4, slot, &src);
		if (!c)
			return 0;
		__builtin_memcpy(&dst, p->dst, 4);
		if (c->ninline != VPBLU_NOT_INLINE) {
			for (int i = 0; i < VPBLU_INLINE_DSTS; i++) {
				if (i >= c->ninline)
					return 0;
				__builtin_memcpy(&addr, c->dst[i].addr, 4);
				__builtin_memcpy(&mask, c->dst[i].mask, 4);
				if ((dst & mask) == addr)
					return 1;
			}
			return 0;
		}
		struct vpblu_block4 k = {.prefixlen = 32 + 32, .class = c->class};

		__builtin_memcpy(k.addr, p->dst, 4);
		return VPBLU_LOOKUP(&vpblu_block_dst4, slot, &k) != NULL;
	} else {
		struct vpblu_lpm6 src = {.prefixlen = 128};
		struct vpblu_class6 *c;
		__u64 dst[2], addr[2], mask[2];

		__builtin_memcpy(src.addr, p->src, 16);
		c = VPBLU_LOOKUP(&vpblu_block_src6, slot, &src);
		if (!c)
			return 0;
		__builtin_memcpy(dst, p->dst, 16);
		if (c->ninline != VPBLU_NOT_INLINE) {
			for (int i = 0; i < VPBLU_INLINE_DSTS; i++) {
				if (i >= c->ninline)
					return 0;
				__builtin_memcpy(addr, c->dst[i].addr, 16);
				__builtin_memcpy(mask, c->dst[i].mask, 16);
				if ((dst[0] & mask[0]) == addr[0] && (dst[1] & mask[1]) == addr[1])
					return 1;
			}
			return 0;
		}
		struct vpblu_block6 k = {.prefixlen = 32 + 128, .class = c->class};

		__builtin_memcpy(k.addr, p->dst, 16);
		return VPBLU_LOOKUP(&vpblu_block_dst6, slot, &k) != NULL;
	}
}

/* vpblu_node_flags returns the VPBLU_NODE_* flags of a node; an unknown
 * node has none, so it is neither ready nor isolated. */
static __always_inline __u32 vpblu_node_flags(__u32 slot, __u32 node)
{
	struct vpblu_node *n = VPBLU_LOOKUP(&vpblu_nodes, slot, &node);

	return n ? n->flags : 0;
}

#endif /* VPBLU_POLICY_H */
