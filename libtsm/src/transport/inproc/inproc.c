/*
 * transport/inproc/inproc.c - in-process transport for tests and
 * examples: a dial makes an AF_UNIX socketpair and gives one end to the
 * listening context, so inproc sessions run the very same session and
 * engine code as TCP (nothing is mocked).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/common.h"
#include "transport/tcp/tcp.h"

struct inproc_ent {
	char name[65];
	struct tsm_ctx *ctx;
	struct inproc_ent *next;
};

static pthread_mutex_t inproc_mu = PTHREAD_MUTEX_INITIALIZER;
static struct inproc_ent *inproc_list;

static struct inproc_ent *inproc_find(const char *name)
{
	for (struct inproc_ent *e = inproc_list; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

tsm_err tsm__inproc_listen(const char *name, struct tsm_ctx *ctx)
{
	tsm_err err = TSM_OK;
	pthread_mutex_lock(&inproc_mu);
	if (inproc_find(name)) {
		err = tsm__err_set(TSM_ERR_ADDR_IN_USE, "inproc://%s is taken", name);
	} else {
		struct inproc_ent *e = calloc(1, sizeof(*e));
		if (!e) {
			err = tsm__err_set(TSM_ENOMEM, "inproc listen");
		} else {
			strncpy(e->name, name, sizeof(e->name) - 1);
			e->ctx = ctx;
			e->next = inproc_list;
			inproc_list = e;
		}
	}
	pthread_mutex_unlock(&inproc_mu);
	return err;
}

void tsm__inproc_unlisten(const char *name, struct tsm_ctx *ctx)
{
	pthread_mutex_lock(&inproc_mu);
	for (struct inproc_ent **pp = &inproc_list; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0 && (*pp)->ctx == ctx) {
			struct inproc_ent *e = *pp;
			*pp = e->next;
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&inproc_mu);
}

/* The registry lock is held across the hand-over so that the listening
 * context cannot be closed (and freed) in between. */
tsm_err tsm__inproc_dial(const char *name, int *fd)
{
	int sv[2];
	tsm_err err;
	pthread_mutex_lock(&inproc_mu);
	struct inproc_ent *e = inproc_find(name);
	if (!e) {
		err = tsm__err_set(TSM_ERR_CONN_REFUSED, "inproc://%s: no listener", name);
	} else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	                      0, sv) < 0) {
		err = tsm__err_set(TSM_ETRANSPORT, "socketpair: %s", strerror(errno));
	} else if ((err = tsm__ctx_adopt_fd(e->ctx, sv[1])) != TSM_OK) {
		close(sv[0]);
		close(sv[1]);
	} else {
		*fd = sv[0];
	}
	pthread_mutex_unlock(&inproc_mu);
	return err;
}
