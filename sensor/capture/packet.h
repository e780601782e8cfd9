/*
 * packet.h - L2..L4 decoding of one captured frame into a plain struct.
 * The capture loop calls packet_decode(); every later stage (flow table,
 * reassembly) reads struct packet and never looks at raw frame bytes again.
 */
#ifndef MXW_PACKET_H
#define MXW_PACKET_H

#include <stddef.h>
#include <stdint.h>

enum packet_result {
	PKT_OK = 0,       /* TCP or UDP segment decoded */
	PKT_NOT_IP,       /* ARP, LLDP, ...: not ours */
	PKT_NOT_TCPUDP,   /* ICMP, ESP, ...: not ours */
	PKT_FRAGMENT,     /* IP fragment: not reassembled */
	PKT_TRUNCATED,    /* headers cut short by snaplen or a lying length */
	PKT_MALFORMED,    /* impossible header values */
	PKT_BAD_LINKTYPE, /* link type we do not decode */
	PKT_RESULT_COUNT
};

const char *packet_result_name(enum packet_result r);

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10
#define TCPF_URG 0x20

struct packet {
	uint64_t ts_ns;     /* capture time, ns since the epoch */
	uint8_t family;     /* 4 or 6 */
	uint8_t ip_proto;   /* 6 TCP, 17 UDP */
	uint8_t vlan_depth; /* 802.1Q/802.1ad tags walked */
	uint8_t tcp_flags;
	uint8_t src[16], dst[16]; /* IPv4 uses the first 4 bytes */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint16_t window;
	const uint8_t *l3;         /* IP header, for classifiers that want whole packets */
	uint32_t l3_len;           /* captured bytes from l3, within the IP length */
	const uint8_t *payload;    /* points into the frame; valid until the next packet */
	uint32_t payload_len;      /* clamped to what was captured */
	uint32_t payload_wire_len; /* what the IP header claims, >= payload_len */
	uint8_t first_of_file;     /* the first TCP packet of a capture file */
	uint16_t file_index;       /* offline: which file, from 1 in reading order; live 0 */
	uint8_t ts_outlier;        /* its own time was far from its neighbours' (ts_ns replaced) */
};

/* Decodes one frame of the given DLT link type. `caplen` is what was
 * captured; nothing at or past frame+caplen is read. */
enum packet_result packet_decode(int linktype, const uint8_t *frame, size_t caplen,
				 struct packet *out);

/* Returns 1 when packet_decode() knows this DLT. */
int packet_linktype_supported(int linktype);

#endif
