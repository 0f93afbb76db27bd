/*
 * bench/bench_util.h - helpers shared by the raw floors and the libtsm
 * benchmark: clock, CPU pinning, percentiles, a result block shared
 * across fork(), option parsing.
 *
 * Threading: none of this is meant for more than one thread per process.
 * The shared block uses lock-free atomics, which work across processes
 * on a MAP_SHARED mapping.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sizes in bytes of what a benchmark moves per message. */
#define BENCH_KIB ((size_t)1024)
#define BENCH_MIB ((size_t)1024 * 1024)

/* bench_now_ns returns CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_now_ns(void);

/*
 * bench_pin pins the calling thread (and so every thread it creates
 * later) to cpu. Returns 0, or -1 after a warning on stderr when the CPU
 * does not exist or the call is refused: a benchmark still runs unpinned.
 */
int bench_pin(int cpu);

/* Latency summary of one run, in microseconds. */
struct bench_lat {
	double p50, p99, p999, max;
};

/*
 * bench_lat_compute sorts ns[0..n) in place and returns its nearest-rank
 * percentiles in microseconds; all zero when n is 0.
 */
struct bench_lat bench_lat_compute(int64_t *ns, size_t n);

/*
 * What the child of a fork() hands back to the parent. Mapped with
 * bench_shared_map before fork; both processes see the same memory.
 */
struct bench_shared {
	_Atomic int64_t t_start;   /* sender's clock before its first message */
	_Atomic int64_t t_end;     /* receiver's clock after its last message */
	_Atomic uint64_t received; /* messages the receiver parsed */
	/*
	 * The sender stopped early (time budget) after sent messages: the
	 * receiver is done once it has that many, not the count it was told.
	 */
	_Atomic uint64_t sent;
	_Atomic int stop;          /* set after sent */
};

/* bench_shared_map returns a zeroed shared block, or NULL (errno set). */
struct bench_shared *bench_shared_map(void);

/*
 * bench_fork forks a child that gets SIGKILL if the parent dies, so a
 * benchmark killed by run.sh's timeout leaves nothing spinning behind.
 * Returns as fork().
 */
pid_t bench_fork(void);

/*
 * bench_wait_child waits for pid; returns 0 if it exited with status 0,
 * else -1 after saying why on stderr.
 */
int bench_wait_child(pid_t pid, const char *who);

/*
 * bench_parse_size reads "64", "1K", "1KiB", "64k", "1M", "1MiB" into
 * *out. Returns 0, or -1 for anything else (including 0).
 */
int bench_parse_size(const char *s, size_t *out);

/* bench_parse_u64 reads a positive decimal into *out; 0 or -1. */
int bench_parse_u64(const char *s, uint64_t *out);

/*
 * bench_shm_map returns len zeroed bytes shared with every process forked
 * afterwards (MAP_SHARED | MAP_ANONYMOUS), or NULL (errno set).
 */
void *bench_shm_map(size_t len);

/* bench_cpu_ns returns the CPU time of the whole process (all threads,
 * CLOCK_PROCESS_CPUTIME_ID) in nanoseconds. */
int64_t bench_cpu_ns(void);

/* bench_sleep_until sleeps until CLOCK_MONOTONIC reaches t_ns (returns at
 * once when it has). */
void bench_sleep_until(int64_t t_ns);

/*
 * bench_enter_netns moves the calling thread (and every thread and socket
 * it creates later) into the network namespace that `ip netns add name`
 * made (/run/netns/name). Returns 0, or -1 after saying why on stderr.
 */
int bench_enter_netns(const char *name);

/* bench_put_seq / bench_get_seq store a sequence number little-endian
 * at p (8 bytes), whatever the host's alignment rules. */
void bench_put_seq(void *p, uint64_t seq);
uint64_t bench_get_seq(const void *p);

#endif
