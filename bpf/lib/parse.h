/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Packet parsing: Ethernet (up to two VLAN tags), IPv4, IPv6.
 *
 * Verdicts only need the IP addresses, so the fast path reads the fixed IP
 * header and nothing else. The L4 ports of a sampled drop are found by
 * vpblu_l4, which walks IPv6 extension headers in a bounded loop; a
 * truncated or overlong chain leaves the ports at zero but never changes
 * the verdict, so no header trick can slip a packet past a block. IPv4
 * fragments all carry both addresses and get the same verdict; only the
 * first fragment has ports.
 */
#ifndef VPBLU_PARSE_H
#define VPBLU_PARSE_H

#include <linux/ip.h>
#include <linux/ipv6.h>

#include "common.h"

#define VPBLU_MAX_VLANS 2
#define VPBLU_MAX_EXTHDRS 8

enum vpblu_parse {
	VPBLU_PARSE_OK = 0,
	VPBLU_PARSE_NON_IP,
	VPBLU_PARSE_MALFORMED,
};

struct vpblu_vlanhdr {
	__be16 tci;
	__be16 proto;
};

/* What the programs know about a packet. Addresses are in network byte
 * order; IPv4 uses the first 4 bytes. */
struct vpblu_pkt {
	__u8 family; /* 4 or 6 */
	__u8 proto;  /* protocol after the fixed IP header */
	__u8 nonfirst_frag;
	__u8 pad;
	__u32 l4_off; /* offset after the fixed IP header (IPv4: after options) */
	__u8 src[16];
	__u8 dst[16];
};

/* vpblu_pull makes the first len bytes of the packet directly readable. */
static __always_inline int vpblu_pull(struct __sk_buff *skb, __u32 len)
{
	if ((void *)(long)skb->data + len <= (void *)(long)skb->data_end)
		return 1;
	if (len > skb->len)
		return 0;
	return bpf_skb_pull_data(skb, len) == 0;
}

/* vpblu_parse_ip reads the IP header of family proto (an ETH_P_* value in
 * network byte order) at offset off. */
static __always_inline int vpblu_parse_ip(struct __sk_buff *skb, __be16 proto, __u32 off,
					  struct vpblu_pkt *p)
{
	void *data, *end;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip;

		if (!vpblu_pull(skb, off + sizeof(*ip)))
			return VPBLU_PARSE_MALFORMED;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		ip = data + off;
		if ((void *)(ip + 1) > end)
			return VPBLU_PARSE_MALFORMED;
		if (ip->version != 4 || ip->ihl < 5)
			return VPBLU_PARSE_MALFORMED;
		p->family = 4;
		p->proto = ip->protocol;
		p->nonfirst_frag = (ip->frag_off & bpf_htons(0x1fff)) != 0;
		p->l4_off = off + ip->ihl * 4;
		__builtin_memcpy(p->src, &ip->saddr, 4);
		__builtin_memcpy(p->dst, &ip->daddr, 4);
		return VPBLU_PARSE_OK;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6;

		if (!vpblu_pull(skb, off + sizeof(*ip6)))
			return VPBLU_PARSE_MALFORMED;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		ip6 = data + off;
		if ((void *)(ip6 + 1) > end)
			return VPBLU_PARSE_MALFORMED;
		if (ip6->version != 6)
			return VPBLU_PARSE_MALFORMED;
		p->family = 6;
		p->proto = ip6->nexthdr;
		p->l4_off = off + sizeof(*ip6);
		__builtin_memcpy(p->src, &ip6->saddr, 16);
		__builtin_memcpy(p->dst, &ip6->daddr, 16);
		return VPBLU_PARSE_OK;
	}
	return VPBLU_PARSE_NON_IP;
}

/* vpblu_parse_eth parses a frame that starts with an Ethernet header. */
static __always_inline int vpblu_parse_eth(struct __sk_buff *skb, struct vpblu_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__be16 proto;

	if ((void *)(eth + 1) > end)
		return VPBLU_PARSE_MALFORMED;
	proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < VPBLU_MAX_VLANS; i++) {
		struct vpblu_vlanhdr *vlan;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vlan = data + off;
		if ((void *)(vlan + 1) > end)
			return VPBLU_PARSE_MALFORMED;
		proto = vlan->proto;
		off += sizeof(*vlan);
	}
	return vpblu_parse_ip(skb, proto, off, p);
}

struct vpblu_exthdr {
	__u8 nexthdr;
	__u8 len;
	__be16 frag_off; /* fragment header only */
};

/* vpblu_l4 finds the L4 protocol and ports of a parsed packet, skipping
 * IPv6 extension headers. Ports stay zero when there are none to read. */
static __always_inline void vpblu_l4(struct __sk_buff *skb, const struct vpblu_pkt *p, __u8 *proto,
				     __u16 *sport, __u16 *dport)
{
	__u32 off = p->l4_off;
	__u8 nh = p->proto;
	__be16 ports[2];

	*sport = 0;
	*dport = 0;
	*proto = nh;
	if (p->nonfirst_frag)
		return;
	if (p->family == 6) {
		int i;

		for (i = 0; i < VPBLU_MAX_EXTHDRS; i++) {
			struct vpblu_exthdr h;

			if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
			    nh != IPPROTO_FRAGMENT && nh != IPPROTO_AH)
				break;
			if (bpf_skb_load_bytes(skb, off, &h, sizeof(h)))
				break;
			*proto = h.nexthdr;
			if (nh == IPPROTO_FRAGMENT) {
				if (h.frag_off & bpf_htons(0xfff8))
					return; /* not the first fragment: no L4 header */
				off += 8;
			} else if (nh == IPPROTO_AH) {
				off += (h.len + 2) * 4;
			} else {
				off += (h.len + 1) * 8;
			}
			nh = h.nexthdr;
		}
		if (i == VPBLU_MAX_EXTHDRS)
			return;
		*proto = nh;
	}
	if (nh != IPPROTO_TCP && nh != IPPROTO_UDP && nh != IPPROTO_SCTP)
		return;
	if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)))
		return;
	*sport = bpf_ntohs(ports[0]);
	*dport = bpf_ntohs(ports[1]);
}

#endif /* VPBLU_PARSE_H */
