/*
 * fuzz_capture.c - a whole capture file as input (pcap or pcapng bytes):
 * packet decode, flows, TCP reassembly, SMTP, TLS, X.509, passive DNS and
 * the rules, exactly as `analyze --db none` runs them with one worker.
 */
#include <stdio.h>

#include "run/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	struct pipeline_opts o;
	pipeline_opts_defaults(&o);
	o.db_path = "none";
	o.quiet = 1;
	o.workers = 1;
	char err[512];
	struct pipeline *p = pipeline_new(&o, err, sizeof(err));
	if (!p)
		return 0;
	FILE *f = fmemopen((void *)data, size, "rb");
	if (f) /* closed by the reader */
		capture_read_stream(f, "fuzz", pipeline_on_packet, p, pipeline_counters(p), err,
				    sizeof(err));
	pipeline_finish(p, devnull);
	pipeline_free(p);
	return 0;
}
