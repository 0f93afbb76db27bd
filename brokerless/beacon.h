/*
 * brokerless/beacon.h - optional multicast beacons (off by default):
 * "a node is here, dial it at URL", nothing about topics or identities
 * (design.md §9). A beacon is only a hint: the dial that follows runs the
 * full handshake, and the policy decides as for any peer.
 *
 * Datagram (little-endian), 16 + n bytes:
 *   "TSMB"(4) version=1(1) reserved=0(1) url_len=n(2, 1..127)
 *   node_id(8, != 0) url(n bytes 0x21..0x7e)
 * A URL whose host is 0.0.0.0 is dialed at the datagram's source address.
 */
#ifndef TSM_BROKERLESS_BEACON_H
#define TSM_BROKERLESS_BEACON_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsm/err.h"

#define TSM_BEACON_MAX 144   /* 16 + TSM_ADV_URL_MAX, rounded */

typedef struct tsm__beacon {
	int fd;
	struct sockaddr_in group;
} tsm__beacon;

/*
 * tsm__beacon_open joins spec ("GROUP:PORT", an IPv4 multicast group) on
 * the interface with address ifaddr (INADDR_ANY: the kernel's choice).
 * TSM_ERR_BAD_PARAMS for a bad spec, TSM_ETRANSPORT with the reason otherwise.
 */
tsm_err tsm__beacon_open(tsm__beacon *b, const char *spec, struct in_addr ifaddr);
void tsm__beacon_close(tsm__beacon *b);

/* tsm__beacon_send sends one beacon (errors are only counted by callers). */
bool tsm__beacon_send(tsm__beacon *b, uint64_t node_id, const char *url);

/* Encode / decode, pure (decode checks every rule above). */
size_t tsm__beacon_encode(uint8_t *out, uint64_t node_id, const char *url);
bool tsm__beacon_decode(const uint8_t *in, size_t len, uint64_t *node_id,
                        char *url, size_t cap);

/*
 * tsm__beacon_recv reads one waiting datagram: true with its node id, its
 * URL (host 0.0.0.0 replaced by the source address) and nothing else;
 * false when none is waiting. Invalid datagrams are skipped and counted
 * in *bad.
 */
bool tsm__beacon_recv(tsm__beacon *b, uint64_t *node_id, char *url,
                      size_t cap, uint64_t *bad);

#endif
