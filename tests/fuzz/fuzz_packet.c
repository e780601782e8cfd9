/*
 * fuzz_packet.c - one frame through the L2-L4 decoder; the first byte picks
 * the link type among those mxwatch reads.
 */
#include <pcap/dlt.h>

#include "capture/packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int linktypes[] = {DLT_EN10MB, DLT_RAW,       DLT_NULL,       DLT_LOOP,
					DLT_IPV4,   DLT_IPV6,      DLT_LINUX_SLL,  DLT_LINUX_SLL2};
	if (size < 1)
		return 0;
	struct packet pkt;
	pkt.ts_ns = 0;
	packet_decode(linktypes[data[0] % (sizeof(linktypes) / sizeof(linktypes[0]))], data + 1,
		      size - 1, &pkt);
	return 0;
}
