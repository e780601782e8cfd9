/*
 * capture.h - reading packets from pcap/pcapng files (or stdin) via libpcap.
 * The analyze loop calls capture_read_file() per input; each frame is decoded
 * with packet_decode() and handed to the callback. Errors name the file, the
 * packet number and, where libpcap lets us know it, the byte offset.
 */
#ifndef MXW_CAPTURE_H
#define MXW_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "capture/packet.h"

struct capture_counters {
	uint64_t frames;
	uint64_t bytes;                       /* captured bytes */
	uint64_t by_result[PKT_RESULT_COUNT]; /* decode outcome per frame */
	uint64_t udp;                         /* decoded UDP datagrams */
	uint16_t files;                       /* files read so far: packet.file_index */
};

typedef void (*capture_packet_fn)(void *ctx, const struct packet *p);
/* Called now and then with bytes read so far, for a progress display. */
typedef void (*capture_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* Reads every frame of `path` ("-" is stdin). Returns 0, or -1 with a
 * message in err; frames read before an error were already delivered. */
int capture_read_file(const char *path, capture_packet_fn fn, void *ctx,
		      capture_progress_fn progress, void *progress_ctx,
		      struct capture_counters *counters, char *err, size_t errlen);

/* The same from an open stream (e.g. fmemopen in tests); `name` is used in
 * messages. The stream is closed. */
int capture_read_stream(FILE *fp, const char *name, capture_packet_fn fn, void *ctx,
			struct capture_counters *counters, char *err, size_t errlen);

#endif
