// SPDX-License-Identifier: GPL-2.0
/* In-kernel TURN forwarding (RFC 8656) over UDP: a TC (clsact) ingress program on the relay's interface.
 * This file is the IPv4 half and the entry point; tc_relay6.h is the IPv6 half (same paths, same rules). The Python control plane stays the only authority: it puts an entry in a map after a
 * ChannelBind or CreatePermission succeeded and removes it when the binding or the permission ends. This
 * program only forwards what the maps say, and only packets that are plainly what they claim to be.
 *
 *   client -> peer  ChannelData to the listening address, (5-tuple, channel) in `channels`
 *                   -> UDP from the relayed address to the bound peer
 *                   Send indication (XOR-PEER-ADDRESS and DATA in either order, nothing else; DATA first
 *                   over IPv4 only), (5-tuple, peer IP) in
 *                   `permissions` -> UDP from the relayed address to XOR-PEER-ADDRESS
 *   peer -> client  UDP to a relayed address from (peer IP, port) in `peers` -> ChannelData
 *                   (no padding over UDP, RFC 8656 section 12.5); from (peer IP, port 0) in `peers`
 *                   -> a Data indication (XOR-PEER-ADDRESS, DATA padded to 4 bytes, random
 *                   transaction id: the attributes the userspace path sends)
 *
 * A Send indication may end with a FINGERPRINT (Firefox always sends one): it is checked (CRC-32 over
 * the message, tables in `crc32`) and dropped with the STUN framing.
 *
 * Everything else returns TC_ACT_OK before a single byte is changed: not IPv4/UDP, IP options,
 * fragments, GRO-merged skbs, frames not addressed to this host, a UDP checksum of 0 or one that does not verify (which
 * also catches CHECKSUM_PARTIAL skbs from local senders, whose field holds only the pseudo-header sum),
 * ChannelData numbers outside 0x4000-0x7FFF (RFC 8656's 0x4000-0x4FFF, and RFC 5766's up to 0x7FFF that
 * user space accepts with legacy-channel-numbers: only numbers it bound have entries), a ChannelData length
 * beyond the datagram, more than 3 bytes or non-zero bytes after it, Send indications with any other attribute (DONT-FRAGMENT, SOFTWARE,
 * unknown ones), a wrong FINGERPRINT or a bad length, results longer than the configured MTU, and every packet
 * while `config` is not enabled. Once a packet has been changed it is redirected, or dropped if a helper
 * fails half-way (counted in STAT_ERRORS): a half-rewritten packet never reaches user space.
 *
 * Map layouts are mirrored in relay/server/kernel/maps.py (one place on the Python side); the loader
 * checks key and value sizes against the object when it opens it.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_ENTRIES (1 << 18)
#define MAX_UDP_LENGTH 2048 /* larger datagrams (jumbo frames inside the VPC) stay in user space */
#define CHUNK 256 /* bytes summed per bpf_csum_diff call, copied into `scratch` */
#define ETH_LEN 14
#define IP_LEN 20
#define UDP_LEN 8
#define L3_OFF ETH_LEN
#define L4_OFF (ETH_LEN + IP_LEN)
#define PAYLOAD_OFF (ETH_LEN + IP_LEN + UDP_LEN)
#define STUN_COOKIE 0x2112A442
#define STUN_HEADER 20
#define SEND_PREFIX 36 /* STUN header 20 + XOR-PEER-ADDRESS (IPv4) 12 + DATA's type and length 4 */
#define XPA_LEN 12 /* XOR-PEER-ADDRESS, IPv4: type, length, reserved, family, port, address */
#define DATA_FIRST_OFF 24 /* STUN header 20 + DATA's type and length 4, when DATA comes first */
#define STUN_FINGERPRINT_XOR 0x5354554e
#define FINGERPRINT_LEN 8 /* type, length, CRC */
#define IP_DF 0x4000
#define IP_MF_OFFSET 0x3FFF
#define OUT_TTL 64
#define NO_MATCH -1 /* a client path's "not mine, nothing changed": try the peer path */

struct config {
	__u32 enabled; /* 0: the program passes everything */
	__u32 ifindex; /* where forwarded packets leave; 0: the interface they came in on */
	__u32 mtu;     /* largest IPv4 packet sent (total length) */
	__u32 pad;
};

struct channel_key { /* a client's ChannelData: the 5-tuple it arrives on and the channel number */
	__u32 client_ip;   /* network order, like every address and port in these maps */
	__u32 server_ip;   /* the listening address the client sends to */
	__u16 client_port;
	__u16 server_port;
	__u16 channel;     /* host order */
	__u16 pad;
};

struct permission_key { /* a client's Send indication: the 5-tuple and the peer's IP */
	__u32 client_ip;
	__u32 server_ip;
	__u16 client_port;
	__u16 server_port;
	__u32 peer_ip;
};

struct out_value { /* where client data leaves: the allocation's relayed address (and, for channels, the peer) */
	__u32 relay_ip;
	__u32 peer_ip;     /* unused in `permissions` (the peer is in the indication) */
	__u16 relay_port;
	__u16 peer_port;
	__u32 pad;
	__u64 packets;
	__u64 bytes;       /* payload bytes, as the userspace counters count them */
};

struct peer_key { /* a datagram to a relayed address from a peer; peer_port 0: any port (permission) */
	__u32 relay_ip;
	__u32 peer_ip;
	__u16 relay_port;
	__u16 peer_port;
};

struct peer_value { /* where peer data goes: the client's 5-tuple and the channel (0: Data indication) */
	__u32 client_ip;
	__u32 server_ip;
	__u16 client_port;
	__u16 server_port;
	__u16 channel;
	__u16 pad;
	__u64 packets;
	__u64 bytes;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

enum stat_index { /* also in maps.py */
	STAT_CHANNEL_TO_PEER,
	STAT_SEND_TO_PEER,
	STAT_CHANNEL_TO_CLIENT,
	STAT_DATA_TO_CLIENT,
	STAT_ERRORS,
	STAT_COUNT,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct channel_key);
	__type(value, struct out_value);
} channels SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct permission_key);
	__type(value, struct out_value);
} permissions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct peer_key);
	__type(value, struct peer_value);
} peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, struct counter);
} stats SEC(".maps");

struct chunk {
	__u8 bytes[CHUNK];
	__u32 cursor; /* see fingerprint_ok */
};

/* The checksum's copy buffer: too big for the 512-byte stack beside the packet builders. Per CPU, and a
 * TC program runs with bottom halves off, so one run never sees another's bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct chunk);
} scratch SEC(".maps");

/* CRC-32 tables for slice-by-4 (t[k * 256 + n]), filled by the loader after load (maps.crc32_tables):
 * until then t[1] is 0 and every FINGERPRINT fails, so those Send indications go to user space. */
struct crc_tables {
	__u32 t[4 * 256];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct crc_tables);
} crc32 SEC(".maps");

struct headers { /* Ethernet, IPv4 without options, UDP: loaded with one bpf_skb_load_bytes */
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
} __attribute__((packed));

struct pseudo { /* the UDP pseudo-header followed by the UDP header with a zero checksum */
	__u32 saddr;
	__u32 daddr;
	__u8 zero;
	__u8 protocol;
	__u16 length;
	struct udphdr udp;
};

struct out_ip_udp { /* what is written at the start of the IP header of a client -> peer packet */
	struct iphdr ip;
	struct udphdr udp;
};

struct out_channel { /* ... of a ChannelData to a client */
	struct iphdr ip;
	struct udphdr udp;
	__u16 channel;
	__u16 length;
};

struct out_data { /* ... of a Data indication to a client */
	struct iphdr ip;
	struct udphdr udp;
	__u16 type;
	__u16 length;
	__u32 cookie;
	__u32 tid[3];
	__u16 xpa_type;
	__u16 xpa_length;
	__u16 family;
	__u16 xport;
	__u32 xaddr;
	__u16 data_type;
	__u16 data_length;
};

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __always_inline void count(__u32 index, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(&stats, &index);

	if (c) {
		c->packets += 1; /* per-CPU: no atomics needed */
		c->bytes += bytes;
	}
}

/* The received UDP checksum is a full, valid one: verified by the NIC (CHECKSUM_UNNECESSARY), or
 * summed here from `seed`, the pseudo-header's sum. Incremental updates below start from it, so it must
 * be right. Called only once a map entry matched: packets for user space do not pay for it. A
 * subprogram, shared by both address families instead of being inlined at every call. */
static __noinline int udp_sum_ok(struct __sk_buff *skb, __u32 l4_offset, __u32 udp_length, __u32 seed)
{
	__u32 zero = 0;
	struct chunk *chunk;
	__u8 *buffer;
	__s64 sum = seed;

	if (bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) >= 0)
		return 1;
	chunk = bpf_map_lookup_elem(&scratch, &zero);
	if (!chunk)
		return 0;
	buffer = chunk->bytes;
	for (__u32 i = 0; i < MAX_UDP_LENGTH / CHUNK; i++) {
		__u64 offset = i * CHUNK;
		__u64 size; /* 64-bit: no zero-extended copy for the compiler to check instead of it */

		if (offset >= udp_length)
			break;
		size = udp_length - offset;
		if (size > CHUNK)
			size = CHUNK;
		else
			__builtin_memset(buffer, 0, CHUNK); /* odd tails are summed with zero padding */
		asm volatile("" : "+r"(size)); /* keep the bound check below on the register that is used */
		if (size < 1 || size > CHUNK || bpf_skb_load_bytes(skb, l4_offset + offset, buffer, size))
			return 0;
		size = (size + 3) & ~3ull; /* whole words: the zeroed tail pads an odd length */
		asm volatile("" : "+r"(size));
		if (size > CHUNK)
			return 0;
		sum = bpf_csum_diff(0, 0, (__be32 *)buffer, size, (__wsum)sum);
		if (sum < 0)
			return 0;
	}
	return fold((__u64)sum) == 0xffff;
}

static __always_inline int udp_checksum_ok(struct __sk_buff *skb, const struct headers *h, __u32 udp_length)
{
	struct pseudo ph = {};
	__s64 seed;

	ph.saddr = h->ip.saddr;
	ph.daddr = h->ip.daddr;
	ph.protocol = IPPROTO_UDP;
	ph.length = h->udp.len;
	seed = bpf_csum_diff(0, 0, (__be32 *)&ph, 12, 0);
	return seed >= 0 && udp_sum_ok(skb, L4_OFF, udp_length, (__u32)seed);
}

/* A Send indication's FINGERPRINT (RFC 8489 section 14.7, checked as section 7.3 requires: a wrong one
 * and the message is discarded, by user space): the CRC-32 of the `length` bytes (a multiple of 4) of
 * the message before the attribute, XORed with 0x5354554e, equals `expected`. */
static __noinline int fingerprint_ok(struct __sk_buff *skb, __u32 offset, __u32 length, __u32 expected)
{
	__u32 zero = 0, crc = 0xFFFFFFFF;
	struct crc_tables *table;
	struct chunk *chunk;

	table = bpf_map_lookup_elem(&crc32, &zero);
	chunk = bpf_map_lookup_elem(&scratch, &zero);
	if (!table || !chunk || table->t[1] == 0)
		return 0;
	/* One flat loop over 4-byte words (nested loops multiply the paths the verifier walks), copying the
	 * next CHUNK bytes into `scratch` every CHUNK / 4 words. */
	for (__u32 word = 0; word < MAX_UDP_LENGTH / 4; word++) {
		__u64 at = (word * 4) & (CHUNK - 1);

		if (word * 4 >= length)
			break;
		if (at == 0) {
			__u64 size = length - word * 4;

			if (size > CHUNK)
				size = CHUNK;
			asm volatile("" : "+r"(size));
			if (size < 4 || size > CHUNK || bpf_skb_load_bytes(skb, offset + word * 4, chunk->bytes, size))
				return 0;
		}
		/* The offset goes through map memory so the verifier cannot know it: without CAP_PERFMON it
		 * refuses pointer arithmetic whose offset is a different constant on each pass (Spectre v1
		 * sanitizing), and an unknown, masked offset is the same case every time. */
		*(volatile __u32 *)&chunk->cursor = at;
		at = *(volatile __u32 *)&chunk->cursor & (CHUNK - 4);
		crc ^= *(__u32 *)(chunk->bytes + at); /* little-endian load: the reflected CRC's order */
		crc = table->t[768 + (crc & 0xff)] ^ table->t[512 + ((crc >> 8) & 0xff)] ^
		      table->t[256 + ((crc >> 16) & 0xff)] ^ table->t[crc >> 24];
	}
	return (crc ^ 0xFFFFFFFF ^ STUN_FINGERPRINT_XOR) == expected;
}

/* The last `count` (0-3) bytes before `end` are zero: padding that may be dropped without changing
 * the UDP checksum. */
static __always_inline int zero_tail(struct __sk_buff *skb, __u32 end, __u32 count)
{
	__u8 tail[4];

	if (count == 0)
		return 1;
	if (count > 3 || bpf_skb_load_bytes(skb, end - 4, tail, 4))
		return 0;
	return (count < 3 || tail[1] == 0) && (count < 2 || tail[2] == 0) && tail[3] == 0;
}

static __always_inline void ip_header(struct iphdr *ip, __u32 saddr, __u32 daddr, __u32 total)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(total);
	ip->id = 0; /* DF set, as the kernel sends UDP from an unconnected socket */
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = OUT_TTL;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = ~fold((__u64)bpf_csum_diff(0, 0, (__be32 *)ip, IP_LEN, 0));
}

/* The new UDP checksum from the old one: take out the old pseudo-header, UDP header and `removed`
 * words, add the new ones and `added`. Every removed or added run starts at an even offset of the UDP
 * datagram and has an even length, so the payload's words keep their alignment. */
static __always_inline __u16 udp_checksum(const struct headers *h, const struct iphdr *ip, const struct udphdr *udp,
					  __be32 *removed, __u32 removed_size, __be32 *trailer, __u32 trailer_size,
					  __be32 *added, __u32 added_size)
{
	struct pseudo before = {}, after = {};
	__s64 sum;
	__u16 check;

	before.saddr = h->ip.saddr;
	before.daddr = h->ip.daddr;
	before.protocol = IPPROTO_UDP;
	before.length = h->udp.len;
	before.udp = h->udp;
	before.udp.check = 0;
	after.saddr = ip->saddr;
	after.daddr = ip->daddr;
	after.protocol = IPPROTO_UDP;
	after.length = udp->len;
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
	return check ? check : 0xffff; /* 0 means "no checksum" in UDP over IPv4 */
}

static __always_inline int redirect(const struct config *cfg, struct __sk_buff *skb)
{
	return bpf_redirect_neigh(cfg->ifindex ? cfg->ifindex : skb->ifindex, 0, 0, 0);
}

static __always_inline int fail(void)
{
	count(STAT_ERRORS, 0);
	return TC_ACT_SHOT; /* the packet was already changed: never hand a half-rewritten one on */
}

static __always_inline int client_channel_data(struct __sk_buff *skb, const struct config *cfg, const struct headers *h,
					       __u32 payload)
{
	struct channel_key key = {};
	struct out_ip_udp out = {};
	struct out_value *entry;
	__u32 length, trailing, total;
	__u16 words[2];

	if (bpf_skb_load_bytes(skb, PAYLOAD_OFF, words, 4))
		return NO_MATCH;
	key.channel = bpf_ntohs(words[0]);
	if (key.channel < 0x4000 || key.channel > 0x7FFF) /* ChannelData's space; entries say which */
		return NO_MATCH;
	length = bpf_ntohs(words[1]);
	if (length + 4 > payload)
		return NO_MATCH; /* shorter than it claims: user space discards it */
	trailing = payload - 4 - length;
	if (!zero_tail(skb, PAYLOAD_OFF + payload, trailing))
		return NO_MATCH;
	key.client_ip = h->ip.saddr;
	key.server_ip = h->ip.daddr;
	key.client_port = h->udp.source;
	key.server_port = h->udp.dest;
	entry = bpf_map_lookup_elem(&channels, &key);
	if (!entry)
		return NO_MATCH;
	if (!udp_checksum_ok(skb, h, UDP_LEN + payload))
		return TC_ACT_OK;
	total = IP_LEN + UDP_LEN + length;
	ip_header(&out.ip, entry->relay_ip, entry->peer_ip, total);
	out.udp.source = entry->relay_port;
	out.udp.dest = entry->peer_port;
	out.udp.len = bpf_htons(UDP_LEN + length);
	out.udp.check = udp_checksum(h, &out.ip, &out.udp, (__be32 *)words, 4, 0, 0, 0, 0);
	if (bpf_skb_adjust_room(skb, -4, BPF_ADJ_ROOM_NET, 0))
		return NO_MATCH; /* nothing changed yet */
	if (trailing && bpf_skb_change_tail(skb, L3_OFF + total, 0))
		return fail();
	if (bpf_skb_store_bytes(skb, L3_OFF, &out, sizeof(out), BPF_F_RECOMPUTE_CSUM))
		return fail();
	__sync_fetch_and_add(&entry->packets, 1);
	__sync_fetch_and_add(&entry->bytes, length);
	count(STAT_CHANNEL_TO_PEER, length);
	return redirect(cfg, skb);
}

/* A Send indication in either order RFC 8489 allows: XOR-PEER-ADDRESS then DATA (browsers), or DATA then
 * XOR-PEER-ADDRESS (coturn's turnutils_uclient); either may end with a FINGERPRINT. The forwarded datagram
 * keeps DATA's value: the bytes before it are cut from the front, DATA's padding and the attributes after
 * it from the end. `buf` holds every byte the checksum must take out, in one stack array (the 512-byte
 * stack has no room for a second set): the first SEND_PREFIX bytes, then the FINGERPRINT; with DATA first,
 * words 6-8 are overwritten with the XOR-PEER-ADDRESS read from after DATA (those words held DATA's own
 * first bytes, which the datagram keeps), so that it and the FINGERPRINT follow each other. */
static __always_inline int client_send_indication(struct __sk_buff *skb, const struct config *cfg,
						  const struct headers *h, __u32 payload)
{
	struct permission_key key = {};
	struct out_ip_udp out = {};
	struct out_value *entry;
	__u32 buf[(SEND_PREFIX + FINGERPRINT_LEN) / 4] = {};
	__u8 *bytes = (__u8 *)buf;
	__u32 stun_length, length, padding, total, end, cut;
	__u16 peer_port;
	__u8 data_first, fingerprint; /* no stdbool in BPF C without libc headers */

	if (payload < SEND_PREFIX || bpf_skb_load_bytes(skb, PAYLOAD_OFF, buf, SEND_PREFIX))
		return NO_MATCH;
	/* type Send indication, a length that covers the datagram exactly, the magic cookie */
	if (bytes[0] != 0x00 || bytes[1] != 0x16 || buf[1] != bpf_htonl(STUN_COOKIE))
		return NO_MATCH;
	stun_length = ((__u32)bytes[2] << 8) | bytes[3];
	if (stun_length + STUN_HEADER != payload || (stun_length & 3) || bytes[20] != 0x00)
		return NO_MATCH;
	if (bytes[21] == 0x12) {
		/* XOR-PEER-ADDRESS, IPv4 (length 8, family 1), then DATA */
		if (bytes[22] != 0 || bytes[23] != 8 || bytes[25] != 0x01 || bytes[32] != 0x00 || bytes[33] != 0x13)
			return NO_MATCH;
		data_first = 0;
		cut = SEND_PREFIX;
		length = ((__u32)bytes[34] << 8) | bytes[35];
	} else if (bytes[21] == 0x13) {
		data_first = 1;
		cut = DATA_FIRST_OFF;
		length = ((__u32)bytes[22] << 8) | bytes[23];
	} else {
		return NO_MATCH;
	}
	padding = (4 - (length & 3)) & 3;
	end = cut + length + padding; /* where DATA ends */
	if (data_first) {
		if (end > MAX_UDP_LENGTH || bpf_skb_load_bytes(skb, PAYLOAD_OFF + end, &buf[6], XPA_LEN))
			return NO_MATCH;
		if (bytes[24] != 0x00 || bytes[25] != 0x12 || bytes[26] != 0 || bytes[27] != 8 || bytes[29] != 0x01)
			return NO_MATCH;
		end += XPA_LEN;
	}
	/* `end`: the message ends here, or a FINGERPRINT follows */
	fingerprint = end + FINGERPRINT_LEN == payload;
	if (fingerprint) {
		if (bpf_skb_load_bytes(skb, PAYLOAD_OFF + end, &buf[9], FINGERPRINT_LEN) ||
		    buf[9] != bpf_htonl(0x80280004))
			return NO_MATCH;
	} else if (end != payload) {
		return NO_MATCH;
	}
	if (!zero_tail(skb, PAYLOAD_OFF + cut + length + padding, padding)) /* DATA's padding */
		return NO_MATCH;
	/* XOR-PEER-ADDRESS is at byte 20 (first) or 24 (after DATA, moved into buf) */
	if (data_first) {
		peer_port = ((__u16)bytes[30] << 8 | bytes[31]) ^ (STUN_COOKIE >> 16);
		key.peer_ip = buf[8] ^ bpf_htonl(STUN_COOKIE);
	} else {
		peer_port = ((__u16)bytes[26] << 8 | bytes[27]) ^ (STUN_COOKIE >> 16);
		key.peer_ip = buf[7] ^ bpf_htonl(STUN_COOKIE);
	}
	if (peer_port == 0)
		return NO_MATCH;
	key.client_ip = h->ip.saddr;
	key.server_ip = h->ip.daddr;
	key.client_port = h->udp.source;
	key.server_port = h->udp.dest;
	entry = bpf_map_lookup_elem(&permissions, &key);
	if (!entry)
		return NO_MATCH;
	if (!udp_checksum_ok(skb, h, UDP_LEN + payload))
		return TC_ACT_OK;
	if (fingerprint && !fingerprint_ok(skb, PAYLOAD_OFF, end, bpf_ntohl(buf[10])))
		return TC_ACT_OK;
	total = IP_LEN + UDP_LEN + length;
	ip_header(&out.ip, entry->relay_ip, key.peer_ip, total);
	out.udp.source = entry->relay_port;
	out.udp.dest = bpf_htons(peer_port);
	out.udp.len = bpf_htons(UDP_LEN + length);
	/* DATA's zero padding adds nothing to the sum; what goes is the front and the attributes after DATA */
	if (data_first)
		out.udp.check = udp_checksum(h, &out.ip, &out.udp, buf, DATA_FIRST_OFF, &buf[6],
					     fingerprint ? XPA_LEN + FINGERPRINT_LEN : XPA_LEN, 0, 0);
	else
		out.udp.check = udp_checksum(h, &out.ip, &out.udp, buf, SEND_PREFIX, &buf[9],
					     fingerprint ? FINGERPRINT_LEN : 0, 0, 0);
	if (bpf_skb_adjust_room(skb, -(__s32)cut, BPF_ADJ_ROOM_NET, 0))
		return NO_MATCH;
	if (payload != cut + length && bpf_skb_change_tail(skb, L3_OFF + total, 0))
		return fail();
	if (bpf_skb_store_bytes(skb, L3_OFF, &out, sizeof(out), BPF_F_RECOMPUTE_CSUM))
		return fail();
	__sync_fetch_and_add(&entry->packets, 1);
	__sync_fetch_and_add(&entry->bytes, length);
	count(STAT_SEND_TO_PEER, length);
	return redirect(cfg, skb);
}

static __always_inline int peer_datagram(struct __sk_buff *skb, const struct config *cfg, const struct headers *h,
					 __u32 payload)
{
	struct peer_key key = {};
	struct peer_value *entry;
	__u32 total, padding;

	key.relay_ip = h->ip.daddr;
	key.relay_port = h->udp.dest;
	key.peer_ip = h->ip.saddr;
	key.peer_port = h->udp.source;
	entry = bpf_map_lookup_elem(&peers, &key);
	if (entry && entry->channel) {
		struct out_channel out = {};

		total = IP_LEN + UDP_LEN + 4 + payload;
		if (total > cfg->mtu || !udp_checksum_ok(skb, h, UDP_LEN + payload))
			return TC_ACT_OK;
		ip_header(&out.ip, entry->server_ip, entry->client_ip, total);
		out.udp.source = entry->server_port;
		out.udp.dest = entry->client_port;
		out.udp.len = bpf_htons(UDP_LEN + 4 + payload);
		out.channel = bpf_htons(entry->channel);
		out.length = bpf_htons(payload);
		out.udp.check = udp_checksum(h, &out.ip, &out.udp, 0, 0, 0, 0, (__be32 *)&out.channel, 4);
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
	entry = bpf_map_lookup_elem(&peers, &key);
	if (entry && !entry->channel) {
		struct out_data out = {};
		__u32 zero = 0, stun_length;

		padding = (4 - (payload & 3)) & 3;
		stun_length = 12 + 4 + payload + padding;
		total = IP_LEN + UDP_LEN + STUN_HEADER + stun_length;
		if (total > cfg->mtu || !udp_checksum_ok(skb, h, UDP_LEN + payload))
			return TC_ACT_OK;
		ip_header(&out.ip, entry->server_ip, entry->client_ip, total);
		out.udp.source = entry->server_port;
		out.udp.dest = entry->client_port;
		out.udp.len = bpf_htons(UDP_LEN + STUN_HEADER + stun_length);
		out.type = bpf_htons(0x0017);
		out.length = bpf_htons(stun_length);
		out.cookie = bpf_htonl(STUN_COOKIE);
		out.tid[0] = bpf_get_prandom_u32();
		out.tid[1] = bpf_get_prandom_u32();
		out.tid[2] = bpf_get_prandom_u32();
		out.xpa_type = bpf_htons(0x0012);
		out.xpa_length = bpf_htons(8);
		out.family = bpf_htons(0x0001);
		out.xport = h->udp.source ^ bpf_htons(STUN_COOKIE >> 16);
		out.xaddr = h->ip.saddr ^ bpf_htonl(STUN_COOKIE);
		out.data_type = bpf_htons(0x0013);
		out.data_length = bpf_htons(payload);
		out.udp.check = udp_checksum(h, &out.ip, &out.udp, 0, 0, 0, 0, (__be32 *)&out.type, SEND_PREFIX);
		/* the tail first: if it cannot grow, nothing has changed yet */
		if (padding && bpf_skb_change_tail(skb, L3_OFF + IP_LEN + UDP_LEN + payload + padding, 0))
			return TC_ACT_OK;
		if (padding && bpf_skb_store_bytes(skb, PAYLOAD_OFF + payload, &zero, padding, BPF_F_RECOMPUTE_CSUM))
			return fail();
		if (bpf_skb_adjust_room(skb, SEND_PREFIX, BPF_ADJ_ROOM_NET, 0))
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

#include "tc_relay6.h"

SEC("tc")
int tc_relay(struct __sk_buff *skb)
{
	struct headers h;
	struct config *cfg;
	__u32 zero = 0, udp_length, payload;
	int action = NO_MATCH;
	__u8 first;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->enabled)
		return TC_ACT_OK;
	if (skb->pkt_type != PACKET_HOST || skb->gso_size || skb->vlan_present)
		return TC_ACT_OK; /* GRO-merged datagrams stay whole: user space receives them as the stack does */
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return tc_relay6(skb, cfg);
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)))
		return TC_ACT_OK;
	if (h.eth.h_proto != bpf_htons(ETH_P_IP) || h.ip.version != 4 || h.ip.ihl != 5 ||
	    h.ip.protocol != IPPROTO_UDP || (h.ip.frag_off & bpf_htons(IP_MF_OFFSET)))
		return TC_ACT_OK;
	udp_length = bpf_ntohs(h.udp.len);
	if (bpf_ntohs(h.ip.tot_len) != IP_LEN + udp_length) /* the IP and UDP lengths agree */
		return TC_ACT_OK;
	if (udp_length < UDP_LEN || udp_length > MAX_UDP_LENGTH || h.udp.check == 0)
		return TC_ACT_OK;
	payload = udp_length - UDP_LEN;
	if (L3_OFF + IP_LEN + udp_length != skb->len)
		return TC_ACT_OK; /* Ethernet padding after a tiny datagram: user space's */
	if (payload < 4 || bpf_skb_load_bytes(skb, PAYLOAD_OFF, &first, 1))
		first = 0xFF; /* too short for ChannelData or STUN: only a peer's datagram can be this small */
	if ((first & 0xC0) == 0x40)
		action = client_channel_data(skb, cfg, &h, payload);
	else if (first == 0x00)
		action = client_send_indication(skb, cfg, &h, payload);
	if (action != NO_MATCH)
		return action;
	return peer_datagram(skb, cfg, &h, payload); /* a peer's payload may start with any byte */
}

char LICENSE[] SEC("license") = "GPL";
