// SPDX-License-Identifier: GPL-2.0
/* The namespace benchmark's echo peer in the kernel (bench/peer_echo.py compiles it and attaches it with tc): a UDP
 * datagram to the echo port is sent back where it came from, from the same address and port, as
 * turnutils_peer does, without a socket or a process. Swapping the addresses and the ports leaves the IPv4
 * and UDP checksums valid (one's-complement sums do not depend on the order of their words), so the
 * packet goes back unchanged otherwise. Anything else (not IPv4/UDP, IP options, fragments, other ports)
 * passes on untouched. ECHO_PORT comes from the compiler's command line. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef ECHO_PORT
#error "compile with -DECHO_PORT=<port>"
#endif

#define HEADERS (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr))

SEC("tc")
int echo(struct __sk_buff *skb)
{
	if (skb->len < HEADERS || bpf_skb_pull_data(skb, HEADERS))
		return TC_ACT_OK;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP ||
	    (ip->frag_off & bpf_htons(0x3FFF)) || udp->dest != bpf_htons(ECHO_PORT))
		return TC_ACT_OK;
	unsigned char mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	__be32 address = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = address;
	__be16 port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	return bpf_redirect(skb->ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
