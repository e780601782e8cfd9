/*
 * keylog.h - TLS 1.3 server handshake secrets from NSS key log files (the
 * format Wireshark and tshark read), indexed by the ClientHello random. An
 * MTA the operator runs writes the file; with it the server's encrypted
 * handshake flight, and so its certificate, can be read (decoder/tls13.h).
 *
 * Only SERVER_HANDSHAKE_TRAFFIC_SECRET lines are kept: nothing here can
 * read application data. Files are read as they grow (the MTA appends while
 * the sensor runs); a file cut short or replaced is read again from its
 * start. Memory is bounded: at most `max_entries` secrets, the oldest given
 * up first. One lock guards the index: a follower may add while the result
 * writer looks up.
 */
#ifndef MXW_KEYLOG_H
#define MXW_KEYLOG_H

#include <stddef.h>
#include <stdint.h>

#define KEYLOG_MAX_ENTRIES_DEFAULT 65536
#define KEYLOG_MAX_FILES           8
#define KEYLOG_MAX_SECRET          64 /* SHA-384 secrets are 48 bytes */
#define KEYLOG_MAX_LINE            512

struct keylog;

struct keylog_stats {
	uint64_t secrets;   /* server handshake secrets held now */
	uint64_t lines;     /* lines read, of any label */
	uint64_t bad_lines; /* lines that are not "LABEL <64 hex> <hex>" */
	uint64_t evicted;   /* secrets given up at the cap */
};

/* Returns NULL on allocation failure. */
struct keylog *keylog_new(uint32_t max_entries);
void keylog_free(struct keylog *k);

/* Adds a file and reads what it holds now. Returns 0, or -1 with a
 * message naming the file and the reason in err. */
int keylog_add_file(struct keylog *k, const char *path, char *err, size_t errlen);

/* Reads what the files gained since the last call; returns the number of
 * new secrets. */
int keylog_poll(struct keylog *k);

/* Parses key log text (whole lines; a line cut at the end is dropped).
 * For tests and fuzzing; files go through keylog_add_file(). */
void keylog_feed(struct keylog *k, const char *text, size_t n);

/* Copies the server handshake secret of the session with this client
 * random; returns its length, or 0 if the log does not hold it. */
size_t keylog_server_secret(struct keylog *k, const uint8_t client_random[32],
			    uint8_t secret[KEYLOG_MAX_SECRET]);

struct keylog_stats keylog_stats(struct keylog *k);

#endif
