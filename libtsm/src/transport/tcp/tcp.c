/*
 * transport/tcp/tcp.c - TCP socket set-up shared by both I/O engines.
 *
 * TCP_NOTSENT_LOWAT keeps unsent kernel bytes small so the socket buffer
 * does not turn back into a FIFO in front of urgent lanes (design.md §5).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "transport/tcp/tcp.h"

#define TSM_NOTSENT_LOWAT (128 * 1024)

tsm_err tsm__tcp_socket(const tsm__url *u, int *fd)
{
	int s = socket(u->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return tsm__err_set(TSM_ETRANSPORT, "socket: %s", strerror(errno));
	*fd = s;
	return TSM_OK;
}

void tsm__tcp_tune(int fd)
{
	int one = 1, low = TSM_NOTSENT_LOWAT;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &low, sizeof(low));
}

tsm_err tsm__tcp_listen(tsm__url *u, int *fd)
{
	int s, one = 1;
	tsm_err e = tsm__tcp_socket(u, &s);
	if (e)
		return e;
	(void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&u->sa, u->sa_len) < 0) {
		int err = errno;
		close(s);
		return tsm__err_set(err == EADDRINUSE ? TSM_ERR_ADDR_IN_USE : TSM_ETRANSPORT,
		                    "bind: %s", strerror(err));
	}
	if (listen(s, 128) < 0) {
		int err = errno;
		close(s);
		return tsm__err_set(TSM_ETRANSPORT, "listen: %s", strerror(err));
	}
	socklen_t len = sizeof(u->sa);
	(void)getsockname(s, (struct sockaddr *)&u->sa, &len);
	*fd = s;
	return TSM_OK;
}
