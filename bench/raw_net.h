/*
 * bench/raw_net.h - blocking TCP helpers of the raw floors of the prio
 * and fanout cases (raw_prio, raw_fanout): IPv4 listen / connect with
 * TCP_NODELAY, whole sends and receives, and little-endian 32-bit fields.
 *
 * Threading: every function works on the descriptors it is given and
 * keeps no state; a descriptor written by two threads needs a lock.
 */
#ifndef BENCH_RAW_NET_H
#define BENCH_RAW_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * rn_listen listens on addr (dotted IPv4) with a kernel-chosen port,
 * stored in *port. Returns the socket, or -1 (errno set).
 */
int rn_listen(const char *addr, int backlog, uint16_t *port);

/* rn_connect dials addr:port; the socket has TCP_NODELAY. -1 on error. */
int rn_connect(const char *addr, uint16_t port);

/* rn_accept accepts one connection and sets TCP_NODELAY. */
int rn_accept(int lfd);

/* rn_send_all sends n bytes; 0 or -1. */
int rn_send_all(int fd, const void *buf, size_t n);

/* rn_writev_all sends every iovec (they are advanced); 0 or -1. */
int rn_writev_all(int fd, struct iovec *iov, int cnt);

/*
 * rn_recv_all reads exactly n bytes: 0; 1 on EOF and 2 on a receive
 * time-out (SO_RCVTIMEO), each before the first byte; -1 on an error or
 * a short message.
 */
int rn_recv_all(int fd, void *buf, size_t n);

/* rn_timeout sets SO_RCVTIMEO (receives and accepts) to ms; 0 or -1. */
int rn_timeout(int fd, int ms);

void rn_put_u32(unsigned char *p, uint32_t v);
uint32_t rn_get_u32(const unsigned char *p);

#endif
