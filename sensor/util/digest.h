/*
 * digest.h - SHA-1 and SHA-256 as OpenSSL digests fetched once: EVP_sha1()
 * and EVP_sha256() make OpenSSL 3 look the algorithm up in its providers
 * (under a lock) at every use, which costs more than hashing a short input.
 */
#ifndef MXW_DIGEST_H
#define MXW_DIGEST_H

#include <openssl/evp.h>

const EVP_MD *digest_sha1(void);
const EVP_MD *digest_sha256(void);

#endif
