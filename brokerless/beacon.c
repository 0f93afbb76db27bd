/*
 * brokerless/beacon.c - multicast beacons (beacon.h).
 */
#include "brokerless/beacon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/common.h"
#include "wire/cursor.h"

#define BEACON_URL_MAX 127

static tsm_err beacon_spec(const char *spec, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = spec ? strrchr(spec, ':') : NULL;
	char *end;
	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "beacon '%s': want "
		                    "GROUP:PORT, e.g. 239.255.77.77:7677",
		                    spec ? spec : "(null)");
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	long port = strtol(colon + 1, &end, 10);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (*end || port < 1 || port > 65535 ||
	    inet_pton(AF_INET, host, &sa->sin_addr) != 1 ||
	    !IN_MULTICAST(ntohl(sa->sin_addr.s_addr)))
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "beacon '%s': GROUP must be "
		                    "an IPv4 multicast address (224.0.0.0/4) and "
		                    "PORT 1..65535", spec);
	sa->sin_port = htons((uint16_t)port);
	return TSM_OK;
}

static tsm_err beacon_fail(tsm__beacon *b, const char *what)
{
	int err = errno;
	tsm__beacon_close(b);
	return tsm__err_set(TSM_ETRANSPORT, "beacon: %s: %s", what, strerror(err));
}

tsm_err tsm__beacon_open(tsm__beacon *b, const char *spec, struct in_addr ifaddr)
{
	int one = 1;
	unsigned char ttl = 1, loop = 1;
	b->fd = -1;
	tsm_err e = beacon_spec(spec, &b->group);
	if (e)
		return e;
	b->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->fd < 0)
		return beacon_fail(b, "socket");
	struct sockaddr_in any = {.sin_family = AF_INET,
	                          .sin_port = b->group.sin_port,
	                          .sin_addr = b->group.sin_addr};
	struct ip_mreq mr = {.imr_multiaddr = b->group.sin_addr,
	                     .imr_interface = ifaddr};
	/* Several nodes of one host share the port; TTL 1: one link only. */
	if (setsockopt(b->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(b->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		return beacon_fail(b, "SO_REUSEADDR/SO_REUSEPORT");
	if (bind(b->fd, (struct sockaddr *)&any, sizeof(any)))
		return beacon_fail(b, "bind");
	if (setsockopt(b->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)))
		return beacon_fail(b, "IP_ADD_MEMBERSHIP");
	if (setsockopt(b->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) ||
	    setsockopt(b->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)))
		return beacon_fail(b, "IP_MULTICAST_TTL/LOOP");
	if (ifaddr.s_addr != htonl(INADDR_ANY) &&
	    setsockopt(b->fd, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof(ifaddr)))
		return beacon_fail(b, "IP_MULTICAST_IF");
	return TSM_OK;
}

void tsm__beacon_close(tsm__beacon *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

size_t tsm__beacon_encode(uint8_t *out, uint64_t node_id, const char *url)
{
	size_t n = strlen(url);
	if (n == 0 || n > BEACON_URL_MAX)
		return 0;
	memcpy(out, "TSMB", 4);
	out[4] = 1;
	out[5] = 0;
	tsm__st16(out + 6, (uint16_t)n);
	tsm__st64(out + 8, node_id);
	memcpy(out + 16, url, n);
	return 16 + n;
}

bool tsm__beacon_decode(const uint8_t *in, size_t len, uint64_t *node_id,
                        char *url, size_t cap)
{
	if (len < 17 || memcmp(in, "TSMB", 4) != 0 || in[4] != 1 || in[5] != 0)
		return false;
	size_t n = tsm__le16(in + 6);
	*node_id = tsm__le64(in + 8);
	if (n == 0 || n > BEACON_URL_MAX || len != 16 + n || *node_id == 0 ||
	    n + 1 > cap)
		return false;
	for (size_t i = 0; i < n; i++)
		if (in[16 + i] <= 0x20 || in[16 + i] >= 0x7f)
			return false;
	memcpy(url, in + 16, n);
	url[n] = '\0';
	return true;
}

bool tsm__beacon_send(tsm__beacon *b, uint64_t node_id, const char *url)
{
	uint8_t buf[TSM_BEACON_MAX];
	size_t n = tsm__beacon_encode(buf, node_id, url);
	return n && sendto(b->fd, buf, n, 0, (struct sockaddr *)&b->group,
	                   sizeof(b->group)) == (ssize_t)n;
}

/* "scheme://0.0.0.0:port" -> "scheme://SRC:port". */
static void beacon_fix_host(char *url, size_t cap, struct in_addr src)
{
	char *host = strstr(url, "://");
	char ip[INET_ADDRSTRLEN], rest[BEACON_URL_MAX + 1];
	if (!host || strncmp(host + 3, "0.0.0.0:", 8) != 0)
		return;
	host += 3;
	inet_ntop(AF_INET, &src, ip, sizeof(ip));
	snprintf(rest, sizeof(rest), "%s", host + 7);
	if ((size_t)(host - url) + strlen(ip) + strlen(rest) < cap)
		snprintf(host, cap - (size_t)(host - url), "%s%s", ip, rest);
}

bool tsm__beacon_recv(tsm__beacon *b, uint64_t *node_id, char *url,
                      size_t cap, uint64_t *bad)
{
	uint8_t buf[TSM_BEACON_MAX + 1];
	for (;;) {
		struct sockaddr_in src;
		socklen_t sl = sizeof(src);
		ssize_t n = recvfrom(b->fd, buf, sizeof(buf), 0,
		                     (struct sockaddr *)&src, &sl);
		if (n < 0)
			return false; /* EAGAIN: nothing waiting (or an error) */
		if (!tsm__beacon_decode(buf, (size_t)n, node_id, url, cap)) {
			(*bad)++;
			continue;
		}
		beacon_fix_host(url, cap, src.sin_addr);
		return true;
	}
}
