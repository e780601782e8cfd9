/*
 * digest.c - digests fetched once per process (thread-safe).
 */
#include "util/digest.h"

#include <pthread.h>

static EVP_MD *sha1_md, *sha256_md;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void fetch(void)
{
	sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *digest_sha1(void)
{
	pthread_once(&once, fetch);
	return sha1_md ? sha1_md : EVP_sha1();
}

const EVP_MD *digest_sha256(void)
{
	pthread_once(&once, fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}
