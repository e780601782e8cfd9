/*
 * fuzz_tls13.c - a TLS 1.3 conversation (frames.h) walked with its server
 * flight kept, then opened with a secret, as the pipeline does with a key
 * log: [secret length:1][secret][frames]. Seeds pair the captures in
 * pcaps/ that have key logs with their real secrets, so decryption, the
 * handshake walk and the certificate entries are all reached.
 */
#include <stdlib.h>

#include "decoder/tls.h"
#include "decoder/tls13.h"
#include "decoder/x509.h"
#include "frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void feed(void *ctx, int dir, const uint8_t *p, size_t n)
{
	if (n)
		tls_feed(ctx, dir, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		ready = x509_init() == 0;
		tls_keep_tls13_flights(1);
	}
	if (size < 1 || size - 1 < data[0])
		return 0;
	size_t secret_len = data[0];
	const uint8_t *secret = data + 1;
	struct tls *t = tls_new();
	if (!t)
		return 0;
	frames_each(data + 1 + secret_len, size - 1 - secret_len, feed, t);
	struct tls_facts *f = tls_take_facts(t);
	if (f && f->server_flight_len && secret_len &&
	    !tls13_open_server_flight(f, secret, secret_len)) {
		for (int i = 0; i < f->n_certs; i++) {
			free(x509_describe(f->certs[i].der, f->certs[i].len));
		}
	}
	tls_facts_free(f);
	tls_free(t);
	return 0;
}
