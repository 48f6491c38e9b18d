// SPDX-License-Identifier: GPL-2.0
/* The IPv6 half of tc_relay.bpf.c (included by it, after the helpers both halves share): the same four
 * paths for a client, listener, relayed address and peer that are all IPv6. The UDP checksum is
 * mandatory over IPv6: it is verified like the IPv4 one and updated, never zeroed. Any extension header
 * (fragments included) sends the packet to user space. An IPv4 client with an IPv6 peer (or the
 * reverse) stays in user space: the family translation is not done here.
 */
#define IP6_LEN 40
#define L4_OFF6 (ETH_LEN + IP6_LEN)
#define PAYLOAD_OFF6 (ETH_LEN + IP6_LEN + UDP_LEN)
#define SEND_PREFIX6 48 /* STUN header 20 + XOR-PEER-ADDRESS (IPv6) 24 + DATA's type and length 4 */
#define OUT_HOP_LIMIT 64

struct channel_key6 {
	__u32 client_ip[4];
	__u32 server_ip[4];
	__u16 client_port;
	__u16 server_port;
	__u16 channel;
	__u16 pad;
};

struct permission_key6 {
	__u32 client_ip[4];
	__u32 server_ip[4];
	__u16 client_port;
	__u16 server_port;
	__u32 peer_ip[4];
};

struct out_value6 {
	__u32 relay_ip[4];
	__u32 peer_ip[4];
	__u16 relay_port;
	__u16 peer_port;
	__u32 pad;
	__u64 packets;
	__u64 bytes;
};

struct peer_key6 {
	__u32 relay_ip[4];
	__u32 peer_ip[4];
	__u16 relay_port;
	__u16 peer_port;
};

struct peer_value6 {
	__u32 client_ip[4];
	__u32 server_ip[4];
	__u16 client_port;
	__u16 server_port;
	__u16 channel;
	__u16 pad;
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct channel_key6);
	__type(value, struct out_value6);
} channels6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct permission_key6);
	__type(value, struct out_value6);
} permissions6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct peer_key6);
	__type(value, struct peer_value6);
} peers6 SEC(".maps");

struct ip6 { /* struct ipv6hdr without its bitfields and unions */
	__u32 vtc_flow;
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u32 saddr[4];
	__u32 daddr[4];
};

struct headers6 { /* loaded from the IP header on: aligned, unlike a packed copy behind the Ethernet header */
	struct ip6 ip;
	struct udphdr udp;
};

struct pseudo6 { /* RFC 8200 section 8.1, then the UDP header with a zero checksum */
	__u32 saddr[4];
	__u32 daddr[4];
	__u32 length;
	__u32 next_header;
	struct udphdr udp;
};

struct out_ip6_udp {
	struct ip6 ip;
	struct udphdr udp;
};

struct out_channel6 {
	struct ip6 ip;
	struct udphdr udp;
	__u16 channel;
	__u16 length;
};

struct out_data6 {
	struct ip6 ip;
	struct udphdr udp;
	__u16 type;
	__u16 length;
	__u32 cookie;
	__u32 tid[3];
	__u16 xpa_type;
	__u16 xpa_length;
	__u16 family;
	__u16 xport;
	__u32 xaddr[4];
	__u16 data_type;
	__u16 data_length;
};

static __always_inline void copy6(__u32 *to, const __u32 *from)
{
	to[0] = from[0];
	to[1] = from[1];
	to[2] = from[2];
	to[3] = from[3];
}

static __always_inline void pseudo6(struct pseudo6 *ph, const __u32 *saddr, const __u32 *daddr, __u16 udp_len_be)
{
	copy6(ph->saddr, saddr);
	copy6(ph->daddr, daddr);
	ph->length = bpf_htonl(bpf_ntohs(udp_len_be));
	ph->next_header = bpf_htonl(IPPROTO_UDP);
}

static __always_inline int udp_checksum_ok6(struct __sk_buff *skb, const struct headers6 *h, __u32 udp_length)
{
	struct pseudo6 ph = {};
	__s64 seed;

	pseudo6(&ph, h->ip.saddr, h->ip.daddr, h->udp.len);
	seed = bpf_csum_diff(0, 0, (__be32 *)&ph, 40, 0);
	return seed >= 0 && udp_sum_ok(skb, L4_OFF6, udp_length, (__u32)seed);
}

static __always_inline void ip6_header(struct ip6 *ip, const __u32 *saddr, const __u32 *daddr, __u32 payload_len)
{
	ip->vtc_flow = bpf_htonl(6u << 28);
	ip->payload_len = bpf_htons(payload_len);
	ip->nexthdr = IPPROTO_UDP;
	ip->hop_limit = OUT_HOP_LIMIT;
	copy6(ip->saddr, saddr);
	copy6(ip->daddr, daddr);
}

static __always_inline __u16 udp_checksum6(const struct headers6 *h, const struct ip6 *ip, const struct udphdr *udp,
					   __be32 *removed, __u32 removed_size, __be32 *trailer, __u32 trailer_size,
					   __be32 *added, __u32 added_size)
{
	struct pseudo6 before = {}, after = {};
	__s64 sum;
	__u16 check;

	pseudo6(&before, h->ip.saddr, h->ip.daddr, h->udp.len);
	before.udp = h->udp;
	before.udp.check = 0;
	pseudo6(&after, ip->saddr, ip->daddr, udp->len);
	after.udp = *udp;
	after.udp.check = 0;
	sum = bpf_csum_diff((__be32 *)&before, sizeof(before), (__be32 *)&after, sizeof(after),
			    (__u16)~h->udp.check);
	if (removed_size)
		sum = bpf_csum_diff(removed, removed_size, 0, 0, (__wsum)sum);
	if (trailer_size)
		sum = bpf_csum_diff(trailer, trailer_size, 0, 0, (__wsum)sum);
	if (added_size)
		sum = bpf_csum_diff(0, 0, added, added_size, (__wsum)sum);
	check = ~fold((__u64)sum);
	return check ? check : 0xffff; /* never 0: that would mean "no checksum", forbidden over IPv6 */
}

static __always_inline int client_channel_data6(struct __sk_buff *skb, const struct config *cfg,
						const struct headers6 *h, __u32 payload)
{
	struct channel_key6 key = {};
	struct out_ip6_udp out = {};
	struct out_value6 *entry;
	__u32 length, trailing;
	__u16 words[2];

	if (bpf_skb_load_bytes(skb, PAYLOAD_OFF6, words, 4))
		return NO_MATCH;
	key.channel = bpf_ntohs(words[0]);
	if (key.channel < 0x4000 || key.channel > 0x7FFF) /* ChannelData's space; entries say which */
		return NO_MATCH;
	length = bpf_ntohs(words[1]);
	if (length + 4 > payload)
		return NO_MATCH;
	trailing = payload - 4 - length;
	if (!zero_tail(skb, PAYLOAD_OFF6 + payload, trailing))
		return NO_MATCH;
	copy6(key.client_ip, h->ip.saddr);
	copy6(key.server_ip, h->ip.daddr);
	key.client_port = h->udp.source;
	key.server_port = h->udp.dest;
	entry = bpf_map_lookup_elem(&channels6, &key);
	if (!entry)
		return NO_MATCH;
	if (!udp_checksum_ok6(skb, h, UDP_LEN + payload))
		return TC_ACT_OK;
	ip6_header(&out.ip, entry->relay_ip, entry->peer_ip, UDP_LEN + length);
	out.udp.source = entry->relay_port;
	out.udp.dest = entry->peer_port;
	out.udp.len = bpf_htons(UDP_LEN + length);
	out.udp.check = udp_checksum6(h, &out.ip, &out.udp, (__be32 *)words, 4, 0, 0, 0, 0);
	if (bpf_skb_adjust_room(skb, -4, BPF_ADJ_ROOM_NET, 0))
		return NO_MATCH;
	if (trailing && bpf_skb_change_tail(skb, L4_OFF6 + UDP_LEN + length, 0))
		return fail();
	if (bpf_skb_store_bytes(skb, L3_OFF, &out, sizeof(out), BPF_F_RECOMPUTE_CSUM))
		return fail();
	__sync_fetch_and_add(&entry->packets, 1);
	__sync_fetch_and_add(&entry->bytes, length);
	count(STAT_CHANNEL_TO_PEER, length);
	return redirect(cfg, skb);
}

static __always_inline int client_send_indication6(struct __sk_buff *skb, const struct config *cfg,
						   const struct headers6 *h, __u32 payload)
{
	struct permission_key6 key = {};
	struct out_ip6_udp out = {};
	struct out_value6 *entry;
	__u32 prefix[SEND_PREFIX6 / 4], fingerprint[2] = {};
	__u8 *bytes = (__u8 *)prefix;
	__u32 stun_length, length, padding, end;
	__u16 peer_port;

	if (payload < SEND_PREFIX6 || bpf_skb_load_bytes(skb, PAYLOAD_OFF6, prefix, SEND_PREFIX6))
		return NO_MATCH;
	if (bytes[0] != 0x00 || bytes[1] != 0x16 || prefix[1] != bpf_htonl(STUN_COOKIE))
		return NO_MATCH;
	stun_length = ((__u32)bytes[2] << 8) | bytes[3];
	if (stun_length + STUN_HEADER != payload || (stun_length & 3))
		return NO_MATCH;
	/* XOR-PEER-ADDRESS, IPv6 (length 20, family 2), then DATA as the last attribute */
	if (bytes[20] != 0x00 || bytes[21] != 0x12 || bytes[22] != 0 || bytes[23] != 20 || bytes[25] != 0x02)
		return NO_MATCH;
	if (bytes[44] != 0x00 || bytes[45] != 0x13)
		return NO_MATCH;
	length = ((__u32)bytes[46] << 8) | bytes[47];
	padding = (4 - (length & 3)) & 3;
	end = SEND_PREFIX6 + length + padding;
	if (end + FINGERPRINT_LEN == payload) {
		if (bpf_skb_load_bytes(skb, PAYLOAD_OFF6 + end, fingerprint, FINGERPRINT_LEN) ||
		    fingerprint[0] != bpf_htonl(0x80280004))
			return NO_MATCH;
	} else if (end != payload) {
		return NO_MATCH;
	}
	if (!zero_tail(skb, PAYLOAD_OFF6 + end, padding))
		return NO_MATCH;
	peer_port = ((__u16)bytes[26] << 8 | bytes[27]) ^ (STUN_COOKIE >> 16);
	if (peer_port == 0)
		return NO_MATCH;
	copy6(key.client_ip, h->ip.saddr);
	copy6(key.server_ip, h->ip.daddr);
	key.client_port = h->udp.source;
	key.server_port = h->udp.dest;
	key.peer_ip[0] = prefix[7] ^ prefix[1]; /* XORed with the cookie, then the transaction id */
	key.peer_ip[1] = prefix[8] ^ prefix[2];
	key.peer_ip[2] = prefix[9] ^ prefix[3];
	key.peer_ip[3] = prefix[10] ^ prefix[4];
	entry = bpf_map_lookup_elem(&permissions6, &key);
	if (!entry)
		return NO_MATCH;
	if (!udp_checksum_ok6(skb, h, UDP_LEN + payload))
		return TC_ACT_OK;
	if (end != payload && !fingerprint_ok(skb, PAYLOAD_OFF6, end, bpf_ntohl(fingerprint[1])))
		return TC_ACT_OK;
	ip6_header(&out.ip, entry->relay_ip, key.peer_ip, UDP_LEN + length);
	out.udp.source = entry->relay_port;
	out.udp.dest = bpf_htons(peer_port);
	out.udp.len = bpf_htons(UDP_LEN + length);
	out.udp.check = udp_checksum6(h, &out.ip, &out.udp, (__be32 *)prefix, SEND_PREFIX6, (__be32 *)fingerprint,
				      end != payload ? FINGERPRINT_LEN : 0, 0, 0);
	if (bpf_skb_adjust_room(skb, -SEND_PREFIX6, BPF_ADJ_ROOM_NET, 0))
		return NO_MATCH;
	if (payload != SEND_PREFIX6 + length && bpf_skb_change_tail(skb, L4_OFF6 + UDP_LEN + length, 0))
		return fail();
	if (bpf_skb_store_bytes(skb, L3_OFF, &out, sizeof(out), BPF_F_RECOMPUTE_CSUM))
		return fail();
	__sync_fetch_and_add(&entry->packets, 1);
	__sync_fetch_and_add(&entry->bytes, length);
	count(STAT_SEND_TO_PEER, length);
	return redirect(cfg, skb);
}

static __always_inline int peer_datagram6(struct __sk_buff *skb, const struct config *cfg, const struct headers6 *h,
					  __u32 payload)
{
	struct peer_key6 key = {};
	struct peer_value6 *entry;
	__u32 padding;

	copy6(key.relay_ip, h->ip.daddr);
	copy6(key.peer_ip, h->ip.saddr);
	key.relay_port = h->udp.dest;
	key.peer_port = h->udp.source;
	entry = bpf_map_lookup_elem(&peers6, &key);
	if (entry && entry->channel) {
		struct out_channel6 out = {};

		if (IP6_LEN + UDP_LEN + 4 + payload > cfg->mtu || !udp_checksum_ok6(skb, h, UDP_LEN + payload))
			return TC_ACT_OK;
		ip6_header(&out.ip, entry->server_ip, entry->client_ip, UDP_LEN + 4 + payload);
		out.udp.source = entry->server_port;
		out.udp.dest = entry->client_port;
		out.udp.len = bpf_htons(UDP_LEN + 4 + payload);
		out.channel = bpf_htons(entry->channel);
		out.length = bpf_htons(payload);
		out.udp.check = udp_checksum6(h, &out.ip, &out.udp, 0, 0, 0, 0, (__be32 *)&out.channel, 4);
		if (bpf_skb_adjust_room(skb, 4, BPF_ADJ_ROOM_NET, 0))
			return TC_ACT_OK;
		if (bpf_skb_store_bytes(skb, L3_OFF, &out, sizeof(out), BPF_F_RECOMPUTE_CSUM))
			return fail();
		__sync_fetch_and_add(&entry->packets, 1);
		__sync_fetch_and_add(&entry->bytes, payload);
		count(STAT_CHANNEL_TO_CLIENT, payload);
		return redirect(cfg, skb);
	}
	key.peer_port = 0;
	entry = bpf_map_lookup_elem(&peers6, &key);
	if (entry && !entry->channel) {
		struct out_data6 out = {};
		__u32 zero = 0, stun_length, udp_length;

		padding = (4 - (payload & 3)) & 3;
		stun_length = 24 + 4 + payload + padding;
		udp_length = UDP_LEN + STUN_HEADER + stun_length;
		if (IP6_LEN + udp_length > cfg->mtu || !udp_checksum_ok6(skb, h, UDP_LEN + payload))
			return TC_ACT_OK;
		ip6_header(&out.ip, entry->server_ip, entry->client_ip, udp_length);
		out.udp.source = entry->server_port;
		out.udp.dest = entry->client_port;
		out.udp.len = bpf_htons(udp_length);
		out.type = bpf_htons(0x0017);
		out.length = bpf_htons(stun_length);
		out.cookie = bpf_htonl(STUN_COOKIE);
		out.tid[0] = bpf_get_prandom_u32();
		out.tid[1] = bpf_get_prandom_u32();
		out.tid[2] = bpf_get_prandom_u32();
		out.xpa_type = bpf_htons(0x0012);
		out.xpa_length = bpf_htons(20);
		out.family = bpf_htons(0x0002);
		out.xport = h->udp.source ^ bpf_htons(STUN_COOKIE >> 16);
		out.xaddr[0] = h->ip.saddr[0] ^ out.cookie;
		out.xaddr[1] = h->ip.saddr[1] ^ out.tid[0];
		out.xaddr[2] = h->ip.saddr[2] ^ out.tid[1];
		out.xaddr[3] = h->ip.saddr[3] ^ out.tid[2];
		out.data_type = bpf_htons(0x0013);
		out.data_length = bpf_htons(payload);
		out.udp.check = udp_checksum6(h, &out.ip, &out.udp, 0, 0, 0, 0, (__be32 *)&out.type, SEND_PREFIX6);
		if (padding && bpf_skb_change_tail(skb, PAYLOAD_OFF6 + payload + padding, 0))
			return TC_ACT_OK;
		if (padding && bpf_skb_store_bytes(skb, PAYLOAD_OFF6 + payload, &zero, padding, BPF_F_RECOMPUTE_CSUM))
			return fail();
		if (bpf_skb_adjust_room(skb, SEND_PREFIX6, BPF_ADJ_ROOM_NET, 0))
			return fail();
		if (bpf_skb_store_bytes(skb, L3_OFF, &out, sizeof(out), BPF_F_RECOMPUTE_CSUM))
			return fail();
		__sync_fetch_and_add(&entry->packets, 1);
		__sync_fetch_and_add(&entry->bytes, payload);
		count(STAT_DATA_TO_CLIENT, payload);
		return redirect(cfg, skb);
	}
	return TC_ACT_OK;
}

static __always_inline int tc_relay6(struct __sk_buff *skb, const struct config *cfg)
{
	struct headers6 h;
	__u32 udp_length, payload;
	int action = NO_MATCH;
	__u8 first;

	if (bpf_skb_load_bytes(skb, L3_OFF, &h, sizeof(h))) /* skb->protocol said IPv6 */
		return TC_ACT_OK;
	if ((bpf_ntohl(h.ip.vtc_flow) >> 28) != 6 || h.ip.nexthdr != IPPROTO_UDP)
		return TC_ACT_OK; /* extension headers, fragments included, are user space's */
	udp_length = bpf_ntohs(h.udp.len);
	if (bpf_ntohs(h.ip.payload_len) != udp_length || L4_OFF6 + udp_length != skb->len)
		return TC_ACT_OK;
	if (udp_length < UDP_LEN || udp_length > MAX_UDP_LENGTH || h.udp.check == 0)
		return TC_ACT_OK;
	payload = udp_length - UDP_LEN;
	if (payload < 4 || bpf_skb_load_bytes(skb, PAYLOAD_OFF6, &first, 1))
		first = 0xFF;
	if ((first & 0xC0) == 0x40)
		action = client_channel_data6(skb, cfg, &h, payload);
	else if (first == 0x00)
		action = client_send_indication6(skb, cfg, &h, payload);
	if (action != NO_MATCH)
		return action;
	return peer_datagram6(skb, cfg, &h, payload);
}
