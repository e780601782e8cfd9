/*
 * bare_pcap_loop - the throughput ceiling for `make bench`: reads each capture with libpcap
 * (pcap_open_offline + pcap_next_ex) and does nothing but count packets and captured bytes,
 * so the time it takes is what libpcap and the page cache cost before mxwatch does any work.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* pcap.h uses u_char, u_int: BSD types that plain -std=c11 hides */
#endif
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include <pcap/pcap.h>

int main(int argc, char **argv)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	uint64_t packets = 0, bytes = 0;
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		pcap_t *p = pcap_open_offline(argv[i], errbuf);
		if (!p) {
			fprintf(stderr, "%s: %s\n", argv[i], errbuf);
			rc = 2;
			continue;
		}
		struct pcap_pkthdr *h;
		const unsigned char *data;
		int r;
		while ((r = pcap_next_ex(p, &h, &data)) == 1) {
			packets++;
			bytes += h->caplen;
		}
		if (r == PCAP_ERROR) {
			fprintf(stderr, "%s: %s\n", argv[i], pcap_geterr(p));
			rc = 2;
		}
		pcap_close(p);
	}
	printf("packets %" PRIu64 " bytes %" PRIu64 "\n", packets, bytes);
	return rc;
}
