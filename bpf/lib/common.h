/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Types shared by the vpblu programs and, through bpf2go, by Go.
 *
 * Every struct here is a map key, map value or ring buffer record. Go
 * mirrors them in bpf/types.go; layout_test.go checks both agree.
 */
#ifndef VPBLU_COMMON_H
#define VPBLU_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Policy is written twice: programs read slot vpblu_active[0] of every
 * policy map, the writer fills the other slot and switches last. */
#define VPBLU_SLOTS 2

/* Which program counted or dropped a packet. */
enum vpblu_hook {
	VPBLU_HOOK_CLASSIFY = 0,
	VPBLU_HOOK_DELIVER = 1,
	VPBLU_HOOK_MAX = 2,
};

/* What a program did with a packet. */
enum vpblu_verdict {
	VPBLU_VERDICT_PASS = 0,  /* TC_ACT_OK, mark untouched */
	VPBLU_VERDICT_DROP = 1,  /* TC_ACT_SHOT */
	VPBLU_VERDICT_STEER = 2, /* TC_ACT_OK with skb->mark set */
	VPBLU_VERDICT_MAX = 3,
};

/* Why a program reached its verdict. */
enum vpblu_reason {
	VPBLU_REASON_NON_IP = 0,    /* neither IPv4 nor IPv6 */
	VPBLU_REASON_MALFORMED = 1, /* IP header unreadable: the stack drops it */
	VPBLU_REASON_BLOCK = 2,     /* a block rule matched */
	VPBLU_REASON_LOCAL = 3,     /* destination is a pod CIDR of this node */
	VPBLU_REASON_TUNNEL = 4,    /* remote CIDR with a ready tunnel; deliver: arrived through it */
	VPBLU_REASON_NO_TUNNEL = 5, /* cross-node destination without a ready tunnel */
	VPBLU_REASON_ISOLATED = 6,  /* this node or the peer node is isolated */
	VPBLU_REASON_OTHER = 7,     /* not a cluster destination */
	VPBLU_REASON_MAX = 8,
};

#define VPBLU_COUNTERS (VPBLU_HOOK_MAX * VPBLU_VERDICT_MAX * VPBLU_REASON_MAX)

/* Bits of vpblu_config.flags. */
enum vpblu_config_flag {
	VPBLU_CONFIG_STRICT = 0x1,   /* drop cross-node traffic without a ready tunnel */
	VPBLU_CONFIG_ISOLATED = 0x2, /* this node is isolated: drop all cross-node traffic */
};

/* Bits of vpblu_node.flags. */
enum vpblu_node_flag {
	VPBLU_NODE_READY = 0x1,    /* the tunnel to the node is up */
	VPBLU_NODE_ISOLATED = 0x2, /* the node is quarantined */
	VPBLU_NODE_LISTED = 0x4,   /* the state lists the node (read-back only) */
};

/* Block stage one carries up to VPBLU_INLINE_DSTS destinations of a class
 * in its value, so most packets need no stage-two lookup; a class with
 * more has ninline = VPBLU_NOT_INLINE and its destinations in stage two. */
enum vpblu_inline {
	VPBLU_INLINE_DSTS = 4,
	VPBLU_NOT_INLINE = 0xffffffff,
};

/* Node-wide settings, one per slot. */
struct vpblu_config {
	__u32 flags;
	/* 1 in drop_sample drops is sent to vpblu_drops; 0 sends none. */
	__u32 drop_sample;
};

/* LPM trie keys. addr is in network byte order; prefixlen counts bits of
 * everything after it. */
struct vpblu_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct vpblu_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Stage-two block keys: prefixlen is 32 (the class) + destination bits. */
struct vpblu_block4 {
	__u32 prefixlen;
	__u32 class;
	__u8 addr[4];
};

struct vpblu_block6 {
	__u32 prefixlen;
	__u32 class;
	__u8 addr[16];
};

/* An inline destination: addr is masked, both in network byte order. */
struct vpblu_dst4 {
	__u8 addr[4];
	__u8 mask[4];
};

struct vpblu_dst6 {
	__u8 addr[16];
	__u8 mask[16];
};

/* Block stage-one values: the class of a source prefix (core/blocks) and,
 * when they fit, its destinations. */
struct vpblu_class4 {
	__u32 class;
	__u32 ninline; /* valid entries of dst, or VPBLU_NOT_INLINE */
	struct vpblu_dst4 dst[VPBLU_INLINE_DSTS];
};

struct vpblu_class6 {
	__u32 class;
	__u32 ninline;
	struct vpblu_dst6 dst[VPBLU_INLINE_DSTS];
};

/* Where a remote CIDR goes: the node owning it and the fwmark that policy
 * routing turns into that node's tunnel interface. */
struct vpblu_remote {
	__u32 node;
	__u32 mark;
};

struct vpblu_node {
	__u32 flags;
};

/* A block rule as applied, kept for read-back only. */
struct vpblu_rule {
	__u8 family; /* 4 or 6 */
	__u8 src_len;
	__u8 dst_len;
	__u8 pad;
	__u8 src[16];
	__u8 dst[16];
};

/* A sampled drop, as sent to the ring buffer. Ports are in host byte
 * order and zero when the packet has none (or is a non-first fragment). */
struct vpblu_drop {
	__u64 ktime_ns;
	__u32 ifindex;
	__u8 hook;
	__u8 verdict;
	__u8 reason;
	__u8 family; /* 4 or 6 */
	__u8 proto;  /* IP protocol of the L4 header, or the last one seen */
	__u8 pad;
	__u16 sport;
	__u16 dport;
	__u16 pad2;
	__u8 src[16];
	__u8 dst[16];
};

/* BTF anchors. clang 14 emits a struct that is reached only through the
 * pointers of an inner map definition as a forward declaration, which
 * leaves the map without key and value sizes. One unused global of each
 * type, in a section the loader ignores, makes clang emit the whole
 * struct (and gives bpf2go the types the ring buffer and the read-back map
 * carry). */
#define VPBLU_BTF_ANCHOR(type, name) type name __attribute__((section(".vpblu.btf"), used))

#endif /* VPBLU_COMMON_H */
