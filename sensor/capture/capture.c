/*
 * capture.c - offline capture input through libpcap (pcap and pcapng).
 */
#include "capture/capture.h"

#include "util/units.h"
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define PROGRESS_EVERY 65536

static uint64_t file_size(const char *path)
{
	struct stat st;
	if (strcmp(path, "-") == 0 || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	return (uint64_t)st.st_size;
}

static int read_all(pcap_t *p, const char *path, uint64_t total, capture_packet_fn fn, void *ctx,
		    capture_progress_fn progress, void *progress_ctx,
		    struct capture_counters *counters, char *err, size_t errlen)
{
	int linktype = pcap_datalink(p);
	if (!packet_linktype_supported(linktype)) {
		const char *name = pcap_datalink_val_to_name(linktype);
		snprintf(err, errlen, "%s: unsupported link type %d (%s)", path, linktype,
			 name ? name : "unknown");
		pcap_close(p);
		return -1;
	}
	FILE *fp = pcap_file(p);
	struct pcap_pkthdr *h;
	const u_char *data;
	uint64_t n = 0;
	int rc = 0;
	int first_tcp = 1;
	uint16_t file_index = ++counters->files;
	for (;;) {
		int r = pcap_next_ex(p, &h, &data);
		if (r == PCAP_ERROR_BREAK)
			break;
		if (r != 1) {
			/* Asking the offset per packet would cost a syscall each;
			 * where the reader stopped is close enough to find it. */
			long at = fp ? ftell(fp) : -1;
			if (at >= 0)
				snprintf(err, errlen, "%s: packet %llu (near byte offset %ld): %s",
					 path, (unsigned long long)n + 1, at, pcap_geterr(p));
			else
				snprintf(err, errlen, "%s: packet %llu: %s", path,
					 (unsigned long long)n + 1, pcap_geterr(p));
			rc = -1;
			break;
		}
		n++;
		counters->frames++;
		counters->bytes += h->caplen;
		struct packet pkt;
		pkt.ts_ns = (uint64_t)h->ts.tv_sec * NS_PER_S + (uint64_t)h->ts.tv_usec;
		enum packet_result res = packet_decode(linktype, data, h->caplen, &pkt);
		counters->by_result[res]++;
		if (res == PKT_OK) {
			/* Where a file begins, its time may go back: the flow clock
			 * may start over there, and nowhere else at once. */
			pkt.first_of_file = first_tcp && pkt.ip_proto == 6;
			pkt.file_index = file_index;
			first_tcp &= !pkt.first_of_file;
			fn(ctx, &pkt);
		}
		if (progress && total && (n % PROGRESS_EVERY) == 0 && fp)
			progress(progress_ctx, (uint64_t)ftell(fp), total);
	}
	if (progress && total)
		progress(progress_ctx, total, total);
	pcap_close(p);
	return rc;
}

int capture_read_file(const char *path, capture_packet_fn fn, void *ctx,
		      capture_progress_fn progress, void *progress_ctx,
		      struct capture_counters *counters, char *err, size_t errlen)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!p) {
		snprintf(err, errlen, "%s: cannot read capture: %s", path, perr);
		return -1;
	}
	return read_all(p, path, file_size(path), fn, ctx, progress, progress_ctx, counters, err,
			errlen);
}

int capture_read_stream(FILE *fp, const char *name, capture_packet_fn fn, void *ctx,
			struct capture_counters *counters, char *err, size_t errlen)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	pcap_t *p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!p) {
		fclose(fp);
		snprintf(err, errlen, "%s: cannot read capture: %s", name, perr);
		return -1;
	}
	return read_all(p, name, 0, fn, ctx, NULL, NULL, counters, err, errlen);
}
