/*
 * bench/raw_fabric.c - the raw libfabric floor (issue 6): an fi_tsend /
 * fi_trecv ping-pong over one FI_EP_RDM endpoint per process, the same
 * provider libtsm uses, the completion queue busy-polled, no security and
 * no framing. Two processes (fork) exchange endpoint names over a pipe.
 *
 *   raw_fabric PROVIDER SIZE ITERS      e.g. raw_fabric "tcp;ofi_rxm" 64 5000
 * prints: raw_fabric: case=rt provider=P size=N p50_us=.. p99_us=..
 */
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_tagged.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fab {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	struct fid_mr *mr;
	void *desc;
	fi_addr_t peer;
	char *buf;
};

#define CK(x)                                                                 \
	do {                                                                  \
		int _r = (x);                                                 \
		if (_r) {                                                     \
			fprintf(stderr, "raw_fabric: %s: %s\n", #x,           \
			        fi_strerror(-_r));                            \
			exit(1);                                              \
		}                                                             \
	} while (0)

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void fab_open(struct fab *f, const char *prov, size_t size)
{
	struct fi_info *hints = fi_allocinfo();
	hints->ep_attr->type = FI_EP_RDM;
	hints->caps = FI_TAGGED;
	hints->tx_attr->msg_order = hints->rx_attr->msg_order = FI_ORDER_SAS;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
	                              FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	hints->fabric_attr->prov_name = strdup(prov);
	/* shm: a name of our own (as libtsm's engine does). The default,
	 * "PID:0:N", collides with the region a killed process left in
	 * /dev/shm under a pid now reused, and fi_enable says EBUSY. */
	char svc[64];
	bool shm = strcmp(prov, "shm") == 0;
	snprintf(svc, sizeof(svc), "rawfab-%ld-%llx", (long)getpid(),
	         (unsigned long long)now_us());
	CK(fi_getinfo(FI_VERSION(1, 9), shm ? "tsm" : NULL, shm ? svc : NULL,
	              shm ? FI_SOURCE : 0, hints, &f->info));
	fi_freeinfo(hints);
	CK(fi_fabric(f->info->fabric_attr, &f->fabric, NULL));
	CK(fi_domain(f->fabric, f->info, &f->domain, NULL));
	struct fi_cq_attr cq = {.format = FI_CQ_FORMAT_CONTEXT, .size = 64};
	struct fi_av_attr av = {.type = FI_AV_UNSPEC};
	CK(fi_cq_open(f->domain, &cq, &f->cq, NULL));
	CK(fi_av_open(f->domain, &av, &f->av, NULL));
	CK(fi_endpoint(f->domain, f->info, &f->ep, NULL));
	CK(fi_ep_bind(f->ep, &f->cq->fid, FI_TRANSMIT | FI_RECV));
	CK(fi_ep_bind(f->ep, &f->av->fid, 0));
	CK(fi_enable(f->ep));
	f->buf = calloc(1, size);
	if (f->info->domain_attr->mr_mode & FI_MR_LOCAL) {
		CK(fi_mr_reg(f->domain, f->buf, size, FI_SEND | FI_RECV, 0, 0, 0,
		             &f->mr, NULL));
		f->desc = fi_mr_desc(f->mr);
	}
}

/* Closing the endpoint removes its shm region from /dev/shm. */
static void fab_close(struct fab *f)
{
	if (f->mr)
		fi_close(&f->mr->fid);
	fi_close(&f->ep->fid);
	fi_close(&f->av->fid);
	fi_close(&f->cq->fid);
	fi_close(&f->domain->fid);
	fi_close(&f->fabric->fid);
	fi_freeinfo(f->info);
}

static void wait_one(struct fab *f)
{
	struct fi_cq_entry e;
	ssize_t r;
	while ((r = fi_cq_read(f->cq, &e, 1)) == -FI_EAGAIN)
		;
	if (r < 0) {
		fprintf(stderr, "raw_fabric: cq: %s\n", fi_strerror((int)-r));
		exit(1);
	}
}

static void post_recv(struct fab *f, size_t n)
{
	ssize_t r;
	while ((r = fi_trecv(f->ep, f->buf, n, f->desc, FI_ADDR_UNSPEC, 1, 0,
	                     NULL)) == -FI_EAGAIN)
		fi_cq_read(f->cq, NULL, 0);
	CK((int)r);
}

static void send_one(struct fab *f, size_t n)
{
	ssize_t r;
	while ((r = fi_tsend(f->ep, f->buf, n, f->desc, f->peer, 1, NULL)) ==
	       -FI_EAGAIN)
		fi_cq_read(f->cq, NULL, 0);
	CK((int)r);
	wait_one(f);
}

/* Each side writes its endpoint name to its pipe and reads the peer's. */
static void exchange(struct fab *f, int wfd, int rfd)
{
	char name[256], peer[256];
	size_t len = sizeof(name);
	CK(fi_getname(&f->ep->fid, name, &len));
	if (write(wfd, &len, sizeof(len)) != sizeof(len) ||
	    write(wfd, name, len) != (ssize_t)len)
		exit(1);
	size_t plen;
	if (read(rfd, &plen, sizeof(plen)) != sizeof(plen) || plen > sizeof(peer) ||
	    read(rfd, peer, plen) != (ssize_t)plen)
		exit(1);
	if (fi_av_insert(f->av, peer, 1, &f->peer, 0, NULL) != 1)
		exit(1);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: raw_fabric PROVIDER SIZE ITERS\n");
		return 2;
	}
	size_t size = strtoul(argv[2], NULL, 10);
	int iters = atoi(argv[3]), warm = iters / 10 + 10, ab[2], ba[2];
	if (pipe(ab) || pipe(ba))
		return 1;
	pid_t child = fork();
	struct fab f;
	memset(&f, 0, sizeof(f));
	fab_open(&f, argv[1], size);
	if (child == 0) { /* B: echo */
		exchange(&f, ba[1], ab[0]);
		for (int i = 0; i < warm + iters; i++) {
			post_recv(&f, size);
			wait_one(&f);
			send_one(&f, size);
		}
		fab_close(&f);
		_exit(0);
	}
	exchange(&f, ab[1], ba[0]);
	double *s = malloc(sizeof(double) * (size_t)iters);
	for (int i = 0; i < warm + iters; i++) {
		double t0 = now_us();
		post_recv(&f, size);
		send_one(&f, size);
		wait_one(&f);
		if (i >= warm)
			s[i - warm] = now_us() - t0;
	}
	waitpid(child, NULL, 0);
	fab_close(&f);
	qsort(s, (size_t)iters, sizeof(double), cmp);
	printf("raw_fabric: case=rt provider=%s size=%zu p50_us=%.2f p99_us=%.2f\n",
	       argv[1], size, s[iters / 2], s[iters * 99 / 100]);
	return 0;
}
