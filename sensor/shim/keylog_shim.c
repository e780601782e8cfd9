/*
 * keylog_shim.c - LD_PRELOAD shim that makes an OpenSSL 3 program (Postfix's
 * smtp and smtpd, or any other without a key-log option) write its TLS 1.3
 * handshake secrets in NSS key-log format, so mxwatch can decrypt the
 * server's handshake flight (EncryptedExtensions, Certificate,
 * CertificateVerify, Finished) and check DANE and MTA-STS on TLS 1.3.
 *
 *   LD_PRELOAD=build/mxwatch-keylog.so MXWATCH_KEYLOG=/var/lib/mxwatch/keys PROGRAM...
 *
 * It wraps SSL_CTX_new, SSL_CTX_new_ex and SSL_new and puts its own callback
 * on every SSL_CTX with SSL_CTX_set_keylog_callback. The callback appends each
 * wanted line to the file named by MXWATCH_KEYLOG (else SSLKEYLOGFILE), opened
 * O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, mode 0600, at the first SSL_CTX (so a
 * daemon that chroots or drops privileges later keeps the descriptor), one
 * write() per line so that processes sharing the file never interleave.
 *
 * By default only CLIENT_HANDSHAKE_TRAFFIC_SECRET and
 * SERVER_HANDSHAKE_TRAFFIC_SECRET are written: they open the handshake and
 * nothing of the mail. MXWATCH_KEYLOG_ALL=1 writes every line OpenSSL gives
 * (traffic secrets, exporter, the TLS 1.2 CLIENT_RANDOM master secret).
 * A callback the program sets itself (before or after) still gets every line:
 * SSL_CTX_set_keylog_callback and SSL_CTX_get_keylog_callback are wrapped
 * too, and the program's callback is kept in the SSL_CTX's ex_data.
 * With neither variable set (or in a set-user-ID program: secure_getenv) the
 * shim only passes calls through.
 *
 * libssl is never linked: its symbols are looked up when the program first
 * calls one of the wrapped functions (RTLD_NEXT, else an already loaded
 * libssl.so.3, as when a plugin dlopen()ed it with RTLD_LOCAL).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#define SHIM_NAME     "mxwatch-keylog"
#define SHIM_LINE_MAX 1024 /* longest line written: OpenSSL's are under 240 bytes */

typedef SSL_CTX *(*ctx_new_fn)(const SSL_METHOD *);
typedef SSL_CTX *(*ctx_new_ex_fn)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *);
typedef SSL *(*ssl_new_fn)(SSL_CTX *);
typedef void (*set_cb_fn)(SSL_CTX *, SSL_CTX_keylog_cb_func);
typedef SSL_CTX_keylog_cb_func (*get_cb_fn)(const SSL_CTX *);
typedef SSL_CTX *(*get_ctx_fn)(const SSL *);
typedef int (*set_ex_fn)(SSL_CTX *, int, void *);
typedef void *(*get_ex_fn)(const SSL_CTX *, int);
typedef int (*new_index_fn)(int, long, void *, CRYPTO_EX_new *, CRYPTO_EX_dup *, CRYPTO_EX_free *);

static struct {
	ctx_new_fn ctx_new; /* the real functions, NULL if not found */
	ctx_new_ex_fn ctx_new_ex;
	ssl_new_fn ssl_new;
	set_cb_fn set_cb;
	get_cb_fn get_cb;
	get_ctx_fn get_ctx;
	set_ex_fn set_ex;
	get_ex_fn get_ex;
	int ex_index;     /* SSL_CTX ex_data slot of the program's callback, -1: none */
	const char *path; /* key-log file, NULL: the shim is off */
	int all;          /* MXWATCH_KEYLOG_ALL=1: every line, not only handshake secrets */
} shim = {.ex_index = -1};

static atomic_int shim_fd = -1;                    /* the key-log file, opened once */
static atomic_flag shim_warned = ATOMIC_FLAG_INIT; /* one complaint on stderr, not one a line */
static pthread_once_t shim_once = PTHREAD_ONCE_INIT;

/* POSIX lets a data pointer from dlsym() hold a function pointer. */
_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "function pointers fit in void *");
#define FN_FROM_PTR(fn, ptr) memcpy(&(fn), &(ptr), sizeof(fn))

static void *shim_lookup(const char *lib, const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (p == NULL) {
		/* loaded by dlopen(RTLD_LOCAL): not in our search list, but there */
		void *h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
		if (h != NULL) {
			p = dlsym(h, name);
			dlclose(h); /* NOLOAD took a reference; the owner keeps its own */
		}
	}
	return p;
}

#define LOOKUP(field, lib, name)                   \
	do {                                       \
		void *p_ = shim_lookup(lib, name); \
		FN_FROM_PTR(shim.field, p_);       \
	} while (0)

static void shim_warn(const char *what)
{
	if (!atomic_flag_test_and_set(&shim_warned))
		fprintf(stderr, SHIM_NAME ": %s %s: %s\n", what, shim.path, strerror(errno));
}

/* The file is opened at the first SSL_CTX and kept; a later try if that failed. */
static int shim_open(void)
{
	int fd = atomic_load(&shim_fd);
	if (fd >= 0 || shim.path == NULL)
		return fd;
	fd = open(shim.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		shim_warn("cannot open");
		return -1;
	}
	int expected = -1;
	if (!atomic_compare_exchange_strong(&shim_fd, &expected, fd)) {
		close(fd); /* another thread was first */
		fd = expected;
	}
	return fd;
}

static void shim_init(void)
{
	const char *p = secure_getenv("MXWATCH_KEYLOG");
	if (p == NULL || *p == '\0')
		p = secure_getenv("SSLKEYLOGFILE");
	const char *all = secure_getenv("MXWATCH_KEYLOG_ALL");
	shim.all = all != NULL && strcmp(all, "1") == 0;

	LOOKUP(ctx_new, "libssl.so.3", "SSL_CTX_new");
	LOOKUP(ctx_new_ex, "libssl.so.3", "SSL_CTX_new_ex");
	LOOKUP(ssl_new, "libssl.so.3", "SSL_new");
	LOOKUP(set_cb, "libssl.so.3", "SSL_CTX_set_keylog_callback");
	LOOKUP(get_cb, "libssl.so.3", "SSL_CTX_get_keylog_callback");
	LOOKUP(get_ctx, "libssl.so.3", "SSL_get_SSL_CTX");
	LOOKUP(set_ex, "libssl.so.3", "SSL_CTX_set_ex_data");
	LOOKUP(get_ex, "libssl.so.3", "SSL_CTX_get_ex_data");
	/* SSL_CTX_get_ex_new_index is a macro for this libcrypto function */
	new_index_fn new_index;
	void *ni = shim_lookup("libcrypto.so.3", "CRYPTO_get_ex_new_index");
	FN_FROM_PTR(new_index, ni);

	if (new_index != NULL)
		shim.ex_index = new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, NULL, NULL, NULL, NULL);
	if (p == NULL || *p == '\0' || shim.set_cb == NULL || shim.get_cb == NULL)
		return; /* off: pass calls through */
	shim.path = p;
	shim_open();
}

static void shim_start(void)
{
	pthread_once(&shim_once, shim_init);
}

static SSL_CTX_keylog_cb_func shim_chained(const SSL_CTX *ctx)
{
	SSL_CTX_keylog_cb_func cb = NULL;
	if (ctx == NULL || shim.ex_index < 0 || shim.get_ex == NULL)
		return NULL;
	void *p = shim.get_ex(ctx, shim.ex_index);
	FN_FROM_PTR(cb, p);
	return cb;
}

static int shim_set_chained(SSL_CTX *ctx, SSL_CTX_keylog_cb_func cb)
{
	void *p;
	if (shim.ex_index < 0 || shim.set_ex == NULL)
		return 0;
	FN_FROM_PTR(p, cb);
	return shim.set_ex(ctx, shim.ex_index, p) == 1;
}

static int shim_wanted(const char *line)
{
	static const char *const handshake[] = {
	    "CLIENT_HANDSHAKE_TRAFFIC_SECRET ",
	    "SERVER_HANDSHAKE_TRAFFIC_SECRET ",
	};
	if (shim.all)
		return 1;
	for (size_t i = 0; i < sizeof(handshake) / sizeof(handshake[0]); i++)
		if (strncmp(line, handshake[i], strlen(handshake[i])) == 0)
			return 1;
	return 0;
}

static void shim_write(const char *line)
{
	char buf[SHIM_LINE_MAX];
	size_t len = strnlen(line, sizeof(buf));
	if (len >= sizeof(buf) - 1 || memchr(line, '\n', len) != NULL)
		return; /* not a key-log line */
	int fd = shim_open();
	if (fd < 0)
		return;
	memcpy(buf, line, len);
	buf[len++] = '\n';
	/* one write(): O_APPEND puts the whole line at the end, unsplit */
	ssize_t n;
	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len)
		shim_warn(n < 0 ? "cannot write" : "short write to");
}

static void shim_keylog(const SSL *ssl, const char *line)
{
	if (line == NULL)
		return;
	if (shim_wanted(line))
		shim_write(line);
	SSL_CTX_keylog_cb_func own = shim_chained(shim.get_ctx ? shim.get_ctx(ssl) : NULL);
	if (own != NULL && own != shim_keylog)
		own(ssl, line);
}

/* Our callback on ctx; one the program put there first is kept for chaining. */
static void shim_install(SSL_CTX *ctx)
{
	if (ctx == NULL || shim.path == NULL)
		return;
	SSL_CTX_keylog_cb_func cur = shim.get_cb(ctx);
	if (cur == shim_keylog)
		return;
	if (cur != NULL && !shim_set_chained(ctx, cur))
		return; /* cannot chain: leave the program's own callback alone */
	shim.set_cb(ctx, shim_keylog);
}

/* libssl's function cannot be found: say so, and the caller fails as libssl would */
static void shim_missing(const char *name)
{
	fprintf(stderr, SHIM_NAME ": %s not found (is this an OpenSSL 3 program?)\n", name);
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *meth)
{
	shim_start();
	if (shim.ctx_new == NULL) {
		shim_missing("SSL_CTX_new");
		return NULL;
	}
	SSL_CTX *ctx = shim.ctx_new(meth);
	shim_install(ctx);
	return ctx;
}

SSL_CTX *SSL_CTX_new_ex(OSSL_LIB_CTX *libctx, const char *propq, const SSL_METHOD *meth)
{
	shim_start();
	if (shim.ctx_new_ex == NULL) {
		shim_missing("SSL_CTX_new_ex");
		return NULL;
	}
	SSL_CTX *ctx = shim.ctx_new_ex(libctx, propq, meth);
	shim_install(ctx);
	return ctx;
}

/* Also here, for an SSL_CTX made where no wrapper saw it. */
SSL *SSL_new(SSL_CTX *ctx)
{
	shim_start();
	if (shim.ssl_new == NULL) {
		shim_missing("SSL_new");
		return NULL;
	}
	shim_install(ctx);
	return shim.ssl_new(ctx);
}

void SSL_CTX_set_keylog_callback(SSL_CTX *ctx, SSL_CTX_keylog_cb_func cb)
{
	shim_start();
	if (shim.set_cb == NULL) {
		shim_missing("SSL_CTX_set_keylog_callback");
		return;
	}
	if (shim.path == NULL || cb == shim_keylog || !shim_set_chained(ctx, cb)) {
		shim.set_cb(ctx, cb);
		return;
	}
	shim.set_cb(ctx, shim_keylog); /* the program's cb is chained */
}

SSL_CTX_keylog_cb_func SSL_CTX_get_keylog_callback(const SSL_CTX *ctx)
{
	shim_start();
	if (shim.get_cb == NULL) {
		shim_missing("SSL_CTX_get_keylog_callback");
		return NULL;
	}
	SSL_CTX_keylog_cb_func cb = shim.get_cb(ctx);
	return cb == shim_keylog ? shim_chained(ctx) : cb;
}
