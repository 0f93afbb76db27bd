/*
 * transport/url.h - parsing of libtsm URLs. Pure, thread-safe.
 *
 *   tcp://HOST:PORT      TCP over io_uring (epoll fallback); HOST is an
 *                        IPv4/IPv6 literal ([::1]) or "localhost"; no DNS.
 *   inproc://NAME        same process, NAME [A-Za-z0-9._-]{1,64}
 *   ofi+tcp://, ofi+shm://, ofi+udp://, ofi+verbs://, ofi+efa://,
 *   ofi://PROVIDER/ADDR  libfabric RDM (transport/ofi/ofi.h, docs/transports.md)
 *   auto://HOST:PORT     the best transport per peer: verbs, shm, TCP
 *                        (scheme TSM_URL_OFI, provider "auto", address
 *                        "HOST:PORT"; plain TCP when libtsm has no
 *                        libfabric); HOST as for tcp://
 *
 * Any URL to dial may end in "#<identity pattern>" (security.md "Expected
 * peer"): the peer must prove a SPIFFE ID matching it, for example
 * "tcp://10.0.0.2:7000#spiffe://prod/infer/pub".
 */
#ifndef TSM_TRANSPORT_URL_H
#define TSM_TRANSPORT_URL_H

#include <stdbool.h>
#include <sys/socket.h>

#include "tsm/err.h"

enum tsm__scheme { TSM_URL_TCP = 1, TSM_URL_INPROC = 2, TSM_URL_OFI = 3 };

typedef struct tsm__url {
	enum tsm__scheme scheme;
	struct sockaddr_storage sa; /* TCP */
	socklen_t sa_len;
	char name[65];              /* inproc */
	char expect[2049];          /* expected peer identity pattern or "" */
	char ofi_provider[48];      /* ofi: libfabric provider string */
	char ofi_addr[256];         /* ofi: fabric address */
	bool is_auto;               /* written auto:// */
} tsm__url;

/* tsm__url_parse: TSM_ERR_BAD_URL with a detail saying what is wrong;
 * TSM_ENOTSUP for known but not built-in schemes (ofi+...). */
tsm_err tsm__url_parse(const char *s, tsm__url *out);

/* tsm__url_format writes the URL of u into buf (e.g. after bind to :0). */
void tsm__url_format(const tsm__url *u, char *buf, size_t len);

#endif
