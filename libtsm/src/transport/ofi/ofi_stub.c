/*
 * transport/ofi/ofi_stub.c - built when libfabric is absent: ofi+ URLs
 * are refused with a clear error instead of failing to link.
 */
#include <string.h>

#include "core/common.h"
#include "transport/ofi/ofi.h"

tsm_err tsm__ofi_url(const char *url, char *provider, size_t pcap, char *addr,
                     size_t acap)
{
	(void)provider;
	(void)pcap;
	(void)addr;
	(void)acap;
	return tsm__err_set(TSM_ENOTSUP, "url %s: libtsm was built without "
	                    "libfabric (install libfabric-dev and rebuild)", url);
}

tsm_err tsm__ofi_init(tsm__io **out, const tsm__io_cbs *cbs, bool busy,
                      const char *provider)
{
	(void)out;
	(void)cbs;
	(void)busy;
	return tsm__err_set(TSM_ENOTSUP, "ofi provider %s: libtsm was built "
	                    "without libfabric", provider);
}

tsm_err tsm__ofi_listen_addr(tsm__io *io, const char *addr)
{
	(void)io;
	(void)addr;
	return TSM_ENOTSUP;
}

tsm_err tsm__ofi_bound_url(tsm__io *io, char *buf, size_t cap)
{
	(void)io;
	(void)buf;
	(void)cap;
	return TSM_ENOTSUP;
}

tsm_err tsm__ofi_connect(tsm__io *io, tsm__conn *c, const char *addr)
{
	(void)io;
	(void)c;
	(void)addr;
	return TSM_ENOTSUP;
}

tsm_err tsm__ofi_peer_name(tsm__io *io, int fd, char *buf, size_t cap)
{
	(void)io;
	(void)fd;
	(void)buf;
	(void)cap;
	return TSM_ENOTSUP;
}

const tsm__io_ops tsm__io_ofi_ops = {.size = sizeof(tsm__io_ops), .name = "ofi"};

void tsm__ofi_query(const tsm__io *io, tsm__ofi_info *out)
{
	(void)io;
	memset(out, 0, sizeof(*out));
}

bool tsm__ofi_built(void)
{
	return false;
}

tsm_err tsm__ofi_auto_open(struct tsm_ctx *ctx, const tsm__io_cbs *cbs)
{
	(void)ctx;
	(void)cbs;
	return tsm__err_set(TSM_ENOTSUP, "auto: libtsm was built without "
	                    "libfabric (auto:// is tcp:// then)");
}

bool tsm__ofi_auto_advert(tsm__io *io, char *buf, size_t cap)
{
	(void)io;
	(void)buf;
	(void)cap;
	return false;
}

tsm_err tsm__ofi_auto_learn(tsm__io *io, int fd, const char *dialed,
                            const uint8_t *ad, size_t n, bool *move)
{
	(void)io;
	(void)fd;
	(void)dialed;
	(void)ad;
	(void)n;
	*move = false;
	return TSM_OK;
}
