/*
 * transport/uring/uring_stub.c - built when liburing is absent: the
 * engine exists but refuses to start, so the context falls back to epoll
 * through its one, logged and counted, fallback path.
 */
#include "core/common.h"
#include "transport/io.h"

static tsm_err stub_init(tsm__io **out, const tsm__io_cbs *cbs, bool busy)
{
	(void)out;
	(void)cbs;
	(void)busy;
	return tsm__err_set(TSM_ERR_URING_UNAVAILABLE,
	                    "libtsm was built without liburing");
}

const tsm__io_ops tsm__io_uring_ops = {
	.size = sizeof(tsm__io_ops),
	.name = "io_uring",
	.init = stub_init,
};
