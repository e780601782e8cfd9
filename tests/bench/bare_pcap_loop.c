/*
 * bare_pcap_loop - the throughput ceiling for `make bench`: reads each capture with libpcap
 * (pcap_open_offline + pcap_next_ex) and does nothing but count packets and captured bytes,
 * so the time it takes is what libpcap and the page cache cost before mxwatch does any work.
 * With BARE_BUFFER=N in the environment it reads through an N-byte stdio buffer, as mxwatch
 * does (pcap_fopen_offline), instead of libpcap's default: the same ceiling with as few read
 * calls.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* pcap.h uses u_char, u_int: BSD types that plain -std=c11 hides */
#endif
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <pcap/pcap.h>

static pcap_t *open_capture(const char *path, size_t buffer, char *errbuf)
{
	if (!buffer)
		return pcap_open_offline(path, errbuf);
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "cannot open");
		return NULL;
	}
	setvbuf(f, NULL, _IOFBF, buffer);
	pcap_t *p = pcap_fopen_offline(f, errbuf);
	if (!p)
		fclose(f);
	return p;
}

int main(int argc, char **argv)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	uint64_t packets = 0, bytes = 0;
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE...\n", argv[0]);
		return 2;
	}
	const char *b = getenv("BARE_BUFFER");
	size_t buffer = b ? strtoul(b, NULL, 10) : 0;
	for (int i = 1; i < argc; i++) {
		pcap_t *p = open_capture(argv[i], buffer, errbuf);
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
