/*
 * transport/url.c - URL parsing (transport/url.h). No DNS on purpose:
 * a name lookup can block for seconds, and design.md §9 asks for no DNS
 * requirement; "localhost" is the one name, mapped to 127.0.0.1.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "security/spiffe.h"
#include "transport/url.h"

static tsm_err url_port(const char *s, uint16_t *port)
{
	char *end;
	if (!*s)
		return tsm__err_set(TSM_ERR_BAD_URL, "url: missing port");
	unsigned long v = strtoul(s, &end, 10);
	if (*end || v > 65535 || s[0] == '-' || s[0] == '+')
		return tsm__err_set(TSM_ERR_BAD_URL, "url: bad port '%s'", s);
	*port = (uint16_t)v;
	return TSM_OK;
}

static tsm_err url_tcp(const char *hp, tsm__url *u)
{
	char host[64];
	const char *colon;
	if (hp[0] == '[') {
		const char *rb = strchr(hp, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - hp - 1) >= sizeof(host))
			return tsm__err_set(TSM_ERR_BAD_URL,
			                    "url: IPv6 form is tcp://[addr]:port");
		memcpy(host, hp + 1, (size_t)(rb - hp - 1));
		host[rb - hp - 1] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon || (size_t)(colon - hp) >= sizeof(host))
			return tsm__err_set(TSM_ERR_BAD_URL,
			                    "url: expected tcp://HOST:PORT, got tcp://%s", hp);
		memcpy(host, hp, (size_t)(colon - hp));
		host[colon - hp] = '\0';
	}
	uint16_t port;
	tsm_err e = url_port(colon + 1, &port);
	if (e)
		return e;
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *s4 = (struct sockaddr_in *)&u->sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&u->sa;
	memset(&u->sa, 0, sizeof(u->sa));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		u->sa_len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		u->sa_len = sizeof(*s6);
	} else {
		return tsm__err_set(TSM_ERR_BAD_URL,
		                    "url: host '%s' is not an IP literal (no DNS)", host);
	}
	u->scheme = TSM_URL_TCP;
	return TSM_OK;
}

static tsm_err url_inproc(const char *name, tsm__url *u)
{
	size_t n = strlen(name);
	if (n == 0 || n >= sizeof(u->name))
		return tsm__err_set(TSM_ERR_BAD_URL, "url: inproc name must be 1..64 bytes");
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		if (!ok)
			return tsm__err_set(TSM_ERR_BAD_URL,
			                    "url: inproc name has invalid byte at %zu", i);
	}
	memcpy(u->name, name, n + 1);
	u->scheme = TSM_URL_INPROC;
	return TSM_OK;
}

/* Splits off "#pattern" into u->expect; *s then points at a copy of the
 * address part in buf. */
static tsm_err url_expect(const char **s, char *buf, size_t cap, tsm__url *u)
{
	const char *hash = strchr(*s, '#');
	if (!hash)
		return TSM_OK;
	size_t n = strlen(hash + 1);
	if ((size_t)(hash - *s) >= cap || n >= sizeof(u->expect))
		return tsm__err_set(TSM_ERR_BAD_URL, "url: too long");
	if (tsm__id_pattern_check(hash + 1, n) != TSM_OK)
		return tsm__err_set(TSM_ERR_BAD_URL, "url: expected peer '%s' is not an "
		                    "identity pattern (spiffe://td/path)", hash + 1);
	memcpy(u->expect, hash + 1, n + 1);
	memcpy(buf, *s, (size_t)(hash - *s));
	buf[hash - *s] = '\0';
	*s = buf;
	return TSM_OK;
}

/* The ofi engine parses its own URLs (transport/ofi/ofi_url.c or the
 * stub when libtsm is built without libfabric). */
tsm_err tsm__ofi_url(const char *url, char *provider, size_t pcap, char *addr,
                     size_t acap);

/* ofi_url.c: true, ofi_stub.c: false. */
bool tsm__ofi_built(void);

/* auto://HOST:PORT (docs/transports.md "auto"): the ofi engine picks a
 * transport per peer (verbs, shm, TCP). Without libfabric there is only
 * TCP to pick, so the URL is tcp://HOST:PORT, marked is_auto. */
static tsm_err url_auto(const char *hp, tsm__url *u)
{
	char host[INET6_ADDRSTRLEN];
	if (url_tcp(hp, u) != TSM_OK)
		return tsm__err_set(TSM_ERR_BAD_URL, "url: expected auto://HOST:PORT "
		                    "with HOST an IP literal or localhost, got "
		                    "auto://%s", hp);
	u->is_auto = true;
	if (!tsm__ofi_built())
		return TSM_OK;
	const struct sockaddr_in *s4 = (const void *)&u->sa;
	const struct sockaddr_in6 *s6 = (const void *)&u->sa;
	if (u->sa.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(u->ofi_addr, sizeof(u->ofi_addr), "[%s]:%u", host,
		         ntohs(s6->sin6_port));
	} else {
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(u->ofi_addr, sizeof(u->ofi_addr), "%s:%u", host,
		         ntohs(s4->sin_port));
	}
	snprintf(u->ofi_provider, sizeof(u->ofi_provider), "auto");
	u->scheme = TSM_URL_OFI;
	return TSM_OK;
}

static tsm_err url_ofi(const char *s, tsm__url *u)
{
	tsm_err e = tsm__ofi_url(s, u->ofi_provider, sizeof(u->ofi_provider),
	                         u->ofi_addr, sizeof(u->ofi_addr));
	if (!e)
		u->scheme = TSM_URL_OFI;
	return e;
}

tsm_err tsm__url_parse(const char *s, tsm__url *out)
{
	char addr[256];
	if (!s)
		return tsm__err_set(TSM_ERR_BAD_URL, "url: NULL");
	memset(out, 0, sizeof(*out));
	tsm_err e = url_expect(&s, addr, sizeof(addr), out);
	if (e)
		return e;
	if (strncmp(s, "tcp://", 6) == 0)
		return url_tcp(s + 6, out);
	if (strncmp(s, "inproc://", 9) == 0)
		return url_inproc(s + 9, out);
	if (strncmp(s, "ofi", 3) == 0)
		return url_ofi(s, out);
	if (strncmp(s, "auto://", 7) == 0)
		return url_auto(s + 7, out);
	return tsm__err_set(TSM_ERR_BAD_URL, "url: '%s': unknown scheme (use "
	                    "tcp://, inproc://, auto:// or ofi+...://)", s);
}

void tsm__url_format(const tsm__url *u, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (u->scheme == TSM_URL_INPROC) {
		snprintf(buf, len, "inproc://%s", u->name);
		return;
	}
	if (u->scheme == TSM_URL_OFI && strcmp(u->ofi_provider, "auto") == 0) {
		snprintf(buf, len, "auto://%s", u->ofi_addr);
		return;
	}
	if (u->scheme == TSM_URL_OFI) {
		snprintf(buf, len, "ofi://%s/%s", u->ofi_provider, u->ofi_addr);
		return;
	}
	if (u->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&u->sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "tcp://[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)&u->sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "tcp://%s:%u", host, ntohs(s4->sin_port));
	}
}
