/*
 * tls13.h - the server's TLS 1.3 handshake flight opened with its
 * handshake traffic secret (from the MTA's key log): key and IV derived by
 * HKDF-Expand-Label (RFC 8446 7.1, 7.3) through OpenSSL's EVP KDF, records
 * decrypted with the negotiated AEAD (AES-128-GCM, AES-256-GCM,
 * ChaCha20-Poly1305; per-record nonces from the sequence number, 5.3),
 * then EncryptedExtensions, Certificate (with per-entry extensions),
 * CertificateVerify and Finished walked. Decryption stops at Finished:
 * nothing after it, application data included, is ever decrypted, and the
 * secret and derived keys are wiped before returning.
 */
#ifndef MXW_TLS13_H
#define MXW_TLS13_H

#include <stddef.h>
#include <stdint.h>

#include "decoder/tls.h"

/* Reads f->server_flight with `secret`; on success fills f->certs (as a
 * TLS 1.2 Certificate message would) and sets f->certs_source to "keylog".
 * Returns NULL, or why it could not ("decrypt-failed": a tag did not
 * verify, the wrong secret; "truncated-flight": Finished never came;
 * "bad-handshake"; "unsupported-cipher"). */
const char *tls13_open_server_flight(struct tls_facts *f, const uint8_t *secret,
				     size_t secret_len);

#endif
