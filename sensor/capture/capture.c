/*
 * capture.c - offline capture input through libpcap (pcap and pcapng).
 */
#include "capture/capture.h"

#include "util/units.h"
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
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

struct reading {
	int linktype;
	int first_tcp;
	uint16_t file_index;
	uint64_t n;
	uint64_t total;
	FILE *fp;
	capture_packet_fn fn;
	void *ctx;
	capture_progress_fn progress;
	void *progress_ctx;
	struct capture_counters *counters;
};

static void on_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
	struct reading *rd = (struct reading *)user;
	struct capture_counters *counters = rd->counters;
	rd->n++;
	counters->frames++;
	counters->bytes += h->caplen;
	struct packet pkt;
	pkt.ts_ns = (uint64_t)h->ts.tv_sec * NS_PER_S + (uint64_t)h->ts.tv_usec;
	enum packet_result res = packet_decode(rd->linktype, data, h->caplen, &pkt);
	counters->by_result[res]++;
	if (res == PKT_OK) {
		/* Where a file begins, its time may go back: the flow clock may
		 * start over there, and nowhere else at once. */
		pkt.first_of_file = rd->first_tcp && pkt.ip_proto == 6;
		pkt.file_index = rd->file_index;
		rd->first_tcp &= !pkt.first_of_file;
		rd->fn(rd->ctx, &pkt);
	}
	if (rd->progress && rd->total && (rd->n % PROGRESS_EVERY) == 0 && rd->fp)
		rd->progress(rd->progress_ctx, (uint64_t)ftell(rd->fp), rd->total);
}

/* pcap_dispatch() rather than pcap_next_ex(): the callback gets libpcap's
 * header in place, where pcap_next_ex() copies it into the pcap_t for every
 * packet (a store that showed up as a fifth of a reading thread's time once
 * other threads were busy). */
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
	struct reading rd = {
	    .linktype = linktype,
	    .first_tcp = 1,
	    .file_index = ++counters->files,
	    .total = total,
	    .fp = pcap_file(p),
	    .fn = fn,
	    .ctx = ctx,
	    .progress = progress,
	    .progress_ctx = progress_ctx,
	    .counters = counters,
	};
	int rc = 0;
	int r = pcap_dispatch(p, -1, on_frame, (u_char *)&rd);
	if (r == PCAP_ERROR) {
		/* Asking the offset per packet would cost a syscall each; where
		 * the reader stopped is close enough to find it. */
		long at = rd.fp ? ftell(rd.fp) : -1;
		if (at >= 0)
			snprintf(err, errlen, "%s: packet %llu (near byte offset %ld): %s", path,
				 (unsigned long long)rd.n + 1, at, pcap_geterr(p));
		else
			snprintf(err, errlen, "%s: packet %llu: %s", path,
				 (unsigned long long)rd.n + 1, pcap_geterr(p));
		rc = -1;
	}
	if (progress && total)
		progress(progress_ctx, total, total);
	pcap_close(p);
	return rc;
}

/* Reads a file through a large stdio buffer: libpcap's own opening reads
 * in blocks of the file system's size (4 KiB), a system call each, which
 * cost a tenth of a run on a virtual machine. */
#define READ_BUFFER (1u << 20)

int capture_read_file(const char *path, capture_packet_fn fn, void *ctx,
		      capture_progress_fn progress, void *progress_ctx,
		      struct capture_counters *counters, char *err, size_t errlen)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!fp) {
		snprintf(err, errlen, "%s: cannot read capture: %s: %s", path, path, strerror(errno));
		return -1;
	}
	/* Standard input keeps its own buffer: libpcap never closes it, so a
	 * buffer freed here would stay in use. */
	char *buf = fp != stdin ? malloc(READ_BUFFER) : NULL;
	if (buf)
		setvbuf(fp, buf, _IOFBF, READ_BUFFER);
	/* One thread reads it: libpcap's two freads per packet need no lock,
	 * which they would take once the workers' threads exist. */
	__fsetlocking(fp, FSETLOCKING_BYCALLER);
	pcap_t *p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!p) {
		if (fp != stdin)
			fclose(fp);
		free(buf);
		snprintf(err, errlen, "%s: cannot read capture: %s", path, perr);
		return -1;
	}
	int rc = read_all(p, path, file_size(path), fn, ctx, progress, progress_ctx, counters, err,
			  errlen);
	free(buf); /* read_all closed the file */
	return rc;
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
