/*
 * transport/ofi/ofi_url.c - ofi URL syntax: scheme -> libfabric provider
 * string, and the address part checked for that scheme (design.md §1 URL
 * forms). Only syntax here: what an address means for a provider (sockaddr,
 * shm name, raw name) is decided by the engine once its addr_format is
 * known. Pure and thread-safe.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "transport/ofi/ofi.h"

typedef bool (*addr_check_fn)(const char *a, size_t n);

struct ofi_scheme {
	const char *prefix;
	const char *provider;
	addr_check_fn check;
	const char *want; /* for the error detail */
};

static bool url_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

static bool url_name(const char *a, size_t n)
{
	if (n == 0 || n > 48)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!url_name_char(a[i]))
			return false;
	return true;
}

/* Decimal 0..65535, no sign, no leading junk. */
static bool url_port(const char *p, size_t n)
{
	unsigned v = 0;
	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	return v <= 65535;
}

static bool url_ipv4(const char *a, size_t n)
{
	char buf[16];
	struct in_addr in;
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, a, n);
	buf[n] = '\0';
	return inet_pton(AF_INET, buf, &in) == 1;
}

static const char *url_colon(const char *a, size_t n)
{
	const char *c = memchr(a, ':', n);
	return c && !memchr(c + 1, ':', n - (size_t)(c + 1 - a)) ? c : NULL;
}

static bool url_hostport(const char *a, size_t n)
{
	const char *c = url_colon(a, n);
	return c && url_ipv4(a, (size_t)(c - a)) &&
	       url_port(c + 1, n - (size_t)(c + 1 - a));
}

/* verbs: a local device name to listen on, or an IPoIB address to dial. */
static bool url_devport(const char *a, size_t n)
{
	const char *c = url_colon(a, n);
	return c && url_name(a, (size_t)(c - a)) &&
	       url_port(c + 1, n - (size_t)(c + 1 - a));
}

/* efa: empty (any device), a device name, or a hex-encoded raw name. */
static bool url_efa(const char *a, size_t n)
{
	return n == 0 || url_name(a, n);
}

/* ofi://PROVIDER/ADDRESS: any printable address without spaces. */
static bool url_printable(const char *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] <= ' ' || a[i] > '~')
			return false;
	return n > 0;
}

static const struct ofi_scheme url_schemes[] = {
	{"ofi+tcp://", "tcp;ofi_rxm", url_hostport, "an IPv4 literal and a port"},
	{"ofi+udp://", "udp;ofi_rxd", url_hostport, "an IPv4 literal and a port"},
	{"ofi+shm://", "shm", url_name, "a name of [A-Za-z0-9._-]{1,48}"},
	{"ofi+verbs://", "verbs;ofi_rxm", url_devport, "DEVICE:PORT or IPv4:PORT"},
	{"ofi+efa://", "efa", url_efa, "nothing, a device name or a hex name"},
};

/* libfabric provider strings: "tcp;ofi_rxm", "shm", "psm3". */
static bool url_provider(const char *p, size_t n)
{
	if (n == 0 || n > 47)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == ';'))
			return false;
	}
	return true;
}

static tsm_err url_copy(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap)
		return tsm__err_set(TSM_EINVAL, "ofi url: buffer of %zu bytes too "
		                    "small for %zu", cap, n + 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
	return TSM_OK;
}

static tsm_err url_out(const char *prov, size_t pn, const char *a, size_t an,
                       char *provider, size_t pcap, char *addr, size_t acap)
{
	tsm_err e = url_copy(provider, pcap, prov, pn);
	return e ? e : url_copy(addr, acap, a, an);
}

/* ofi://PROVIDER/ADDRESS */
static tsm_err url_generic(const char *url, const char *rest, size_t n,
                           char *provider, size_t pcap, char *addr, size_t acap)
{
	const char *slash = memchr(rest, '/', n);
	if (!slash || !url_provider(rest, (size_t)(slash - rest)))
		return tsm__err_set(TSM_ERR_BAD_URL, "'%s': want ofi://PROVIDER/ADDRESS "
		                    "with PROVIDER of [a-z0-9_;]", url);
	size_t an = n - (size_t)(slash + 1 - rest);
	if (!url_printable(slash + 1, an))
		return tsm__err_set(TSM_ERR_BAD_URL, "'%s': empty or non-printable "
		                    "address", url);
	return url_out(rest, (size_t)(slash - rest), slash + 1, an, provider, pcap,
	               addr, acap);
}

tsm_err tsm__ofi_url(const char *url, char *provider, size_t pcap, char *addr,
                     size_t acap)
{
	if (!url)
		return tsm__err_set(TSM_ERR_BAD_URL, "ofi url: NULL");
	size_t n = strcspn(url, "#");
	for (size_t i = 0; i < TSM_ARRAY_LEN(url_schemes); i++) {
		const struct ofi_scheme *s = &url_schemes[i];
		size_t pl = strlen(s->prefix);
		if (n < pl || strncmp(url, s->prefix, pl) != 0)
			continue;
		if (!s->check(url + pl, n - pl))
			return tsm__err_set(TSM_ERR_BAD_URL, "'%s': the address must be %s",
			                    url, s->want);
		return url_out(s->provider, strlen(s->provider), url + pl, n - pl,
		               provider, pcap, addr, acap);
	}
	if (n > 6 && strncmp(url, "ofi://", 6) == 0)
		return url_generic(url, url + 6, n - 6, provider, pcap, addr, acap);
	return tsm__err_set(TSM_ERR_BAD_URL, "'%s': not an ofi URL (ofi+tcp, "
	                    "ofi+udp, ofi+shm, ofi+verbs, ofi+efa, ofi://)", url);
}

uint32_t tsm__ofi_lane_tclass(unsigned lane)
{
	/* Values of FI_TC_LOW_LATENCY and FI_TC_BULK_DATA (rdma/fabric.h),
	 * spelled out so that callers need no libfabric headers; ofi.c checks
	 * them at compile time. */
	if (lane <= 1)
		return 0x201u;
	if (lane >= 6 && lane <= 7)
		return 0x203u;
	return 0;
}

bool tsm__ofi_built(void)
{
	return true;
}
