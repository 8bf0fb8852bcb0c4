/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* The maps of the vpblu data plane.
 *
 * Policy maps are arrays of VPBLU_SLOTS inner maps; vpblu_active names the
 * slot in force. Userspace fills a fresh set of inner maps for the other
 * slot, installs them, and switches vpblu_active last with one write, so a
 * program sees either the old policy or the new one, never half of each.
 * Programs only read policy maps; they write vpblu_counters and vpblu_drops.
 * Every policy map is created with BPF_F_RDONLY_PROG, so the verifier
 * refuses a program that tries to write one; maps of maps cannot carry
 * the flag, but programs cannot update them anyway.
 *
 * max_entries of inner maps are placeholders: the loader sets the
 * configured capacity.
 */
#ifndef VPBLU_MAPS_H
#define VPBLU_MAPS_H

#include "common.h"

#define VPBLU_INNER_LPM(name, keytype, valtype)                            \
	struct name {                                                      \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                       \
		__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_RDONLY_PROG);  \
		__uint(max_entries, 1);                                    \
		__type(key, keytype);                                      \
		__type(value, valtype);                                    \
	}

#define VPBLU_SLOTTED(name, inner)                            \
	struct {                                              \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);     \
		__uint(max_entries, VPBLU_SLOTS);             \
		__uint(pinning, LIBBPF_PIN_BY_NAME);          \
		__type(key, __u32);                           \
		__array(values, inner);                       \
	} name SEC(".maps")

VPBLU_INNER_LPM(vpblu_remote4_inner, struct vpblu_lpm4, struct vpblu_remote);
VPBLU_INNER_LPM(vpblu_remote6_inner, struct vpblu_lpm6, struct vpblu_remote);
VPBLU_INNER_LPM(vpblu_set4_inner, struct vpblu_lpm4, __u32);
VPBLU_INNER_LPM(vpblu_set6_inner, struct vpblu_lpm6, __u32);
VPBLU_INNER_LPM(vpblu_class4_inner, struct vpblu_lpm4, struct vpblu_class4);
VPBLU_INNER_LPM(vpblu_class6_inner, struct vpblu_lpm6, struct vpblu_class6);
VPBLU_INNER_LPM(vpblu_block4_inner, struct vpblu_block4, __u32);
VPBLU_INNER_LPM(vpblu_block6_inner, struct vpblu_block6, __u32);

/* An array indexed by node id. BPF_F_INNER_MAP lets its size change with
 * the configured capacity while the outer map stays pinned. */
struct vpblu_nodes_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_RDONLY_PROG);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vpblu_node);
};

struct vpblu_rules_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_RDONLY_PROG);
	__uint(max_entries, 1);
	__type(key, struct vpblu_rule);
	__type(value, __u32);
};

VPBLU_BTF_ANCHOR(struct vpblu_lpm4, vpblu_anchor_lpm4);
VPBLU_BTF_ANCHOR(struct vpblu_lpm6, vpblu_anchor_lpm6);
VPBLU_BTF_ANCHOR(struct vpblu_block4, vpblu_anchor_block4);
VPBLU_BTF_ANCHOR(struct vpblu_block6, vpblu_anchor_block6);
VPBLU_BTF_ANCHOR(struct vpblu_remote, vpblu_anchor_remote);
VPBLU_BTF_ANCHOR(struct vpblu_node, vpblu_anchor_node);
VPBLU_BTF_ANCHOR(struct vpblu_class4, vpblu_anchor_class4);
VPBLU_BTF_ANCHOR(struct vpblu_class6, vpblu_anchor_class6);
VPBLU_BTF_ANCHOR(enum vpblu_inline, vpblu_anchor_inline);
VPBLU_BTF_ANCHOR(struct vpblu_rule, vpblu_anchor_rule);
VPBLU_BTF_ANCHOR(struct vpblu_drop, vpblu_anchor_drop);
VPBLU_BTF_ANCHOR(enum vpblu_hook, vpblu_anchor_hook);
VPBLU_BTF_ANCHOR(enum vpblu_verdict, vpblu_anchor_verdict);
VPBLU_BTF_ANCHOR(enum vpblu_reason, vpblu_anchor_reason);
VPBLU_BTF_ANCHOR(enum vpblu_config_flag, vpblu_anchor_config_flag);
VPBLU_BTF_ANCHOR(enum vpblu_node_flag, vpblu_anchor_node_flag);

/* The slot (0 or 1) of every policy map in force. Written last by Apply. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_RDONLY_PROG);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u32);
} vpblu_active SEC(".maps");

/* Node-wide settings per slot (strict, isolated, drop sampling). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_RDONLY_PROG);
	__uint(max_entries, VPBLU_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct vpblu_config);
} vpblu_config SEC(".maps");

/* Remote pod CIDRs (and RoutePolicy CIDRs) -> owning node and fwmark. */
VPBLU_SLOTTED(vpblu_remote4, struct vpblu_remote4_inner);
VPBLU_SLOTTED(vpblu_remote6, struct vpblu_remote6_inner);

/* This node's own pod CIDRs: traffic to them stays local. */
VPBLU_SLOTTED(vpblu_local4, struct vpblu_set4_inner);
VPBLU_SLOTTED(vpblu_local6, struct vpblu_set6_inner);

/* Every pod CIDR of the cluster: unsteered traffic to them is dropped when
 * strict. */
VPBLU_SLOTTED(vpblu_cluster4, struct vpblu_set4_inner);
VPBLU_SLOTTED(vpblu_cluster6, struct vpblu_set6_inner);

/* Block stage one: source prefix -> class (core/blocks), with the class's
 * destinations inline when they fit. */
VPBLU_SLOTTED(vpblu_block_src4, struct vpblu_class4_inner);
VPBLU_SLOTTED(vpblu_block_src6, struct vpblu_class6_inner);

/* Block stage two: (class, destination prefix) -> drop. */
VPBLU_SLOTTED(vpblu_block_dst4, struct vpblu_block4_inner);
VPBLU_SLOTTED(vpblu_block_dst6, struct vpblu_block6_inner);

/* Per-node state (ready, isolated), indexed by node id. */
VPBLU_SLOTTED(vpblu_nodes, struct vpblu_nodes_inner);

/* The block rules each slot was compiled from. Programs never read it; it
 * lets the daemon read back what it applied after a restart. */
VPBLU_SLOTTED(vpblu_rules, struct vpblu_rules_inner);

/* Packets per (hook, verdict, reason), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VPBLU_COUNTERS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u64);
} vpblu_counters SEC(".maps");

/* Sampled drops (struct vpblu_drop). The loader sets the size. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vpblu_drops SEC(".maps");

#endif /* VPBLU_MAPS_H */
