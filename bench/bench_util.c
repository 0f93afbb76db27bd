/*
 * bench/bench_util.c - helpers shared by raw_tcp and tsm_bench.
 *
 * Both benchmarks fork once and run one process per CPU, so the pieces
 * here are the ones that must behave the same on both sides of a
 * comparison: the clock, the pinning and the percentile arithmetic.
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int bench_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) == 0)
		return 0;
	fprintf(stderr, "bench: warning: cannot pin to CPU %d (%s); "
	        "running unpinned\n", cpu, strerror(errno));
	return -1;
}

static int lat_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p of all at or below. */
static double lat_rank_us(const int64_t *sorted, size_t n, double p)
{
	size_t rank = (size_t)(p * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1000.0;
}

struct bench_lat bench_lat_compute(int64_t *ns, size_t n)
{
	struct bench_lat l = {0, 0, 0, 0};

	if (n == 0)
		return l;
	qsort(ns, n, sizeof(*ns), lat_cmp);
	l.p50 = lat_rank_us(ns, n, 0.50);
	l.p99 = lat_rank_us(ns, n, 0.99);
	l.p999 = lat_rank_us(ns, n, 0.999);
	l.max = (double)ns[n - 1] / 1000.0;
	return l;
}

struct bench_shared *bench_shared_map(void)
{
	void *p = mmap(NULL, sizeof(struct bench_shared),
	               PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Anonymous pages are zero; atomics at zero are valid objects. */
	return p;
}

void *bench_shm_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int64_t bench_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_until(int64_t t_ns)
{
	struct timespec ts = {.tv_sec = t_ns / 1000000000,
	                      .tv_nsec = t_ns % 1000000000};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

int bench_enter_netns(const char *name)
{
	char path[256];
	int fd, rc;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "bench: netns %s: %s\n", path, strerror(errno));
		return -1;
	}
	rc = setns(fd, CLONE_NEWNET);
	if (rc < 0)
		fprintf(stderr, "bench: setns %s: %s\n", path, strerror(errno));
	close(fd);
	return rc;
}

pid_t bench_fork(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* The parent may have died before prctl took effect. */
	if (getppid() != parent)
		_exit(1);
	return 0;
}

int bench_wait_child(pid_t pid, const char *who)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			perror("waitpid");
			return -1;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFSIGNALED(st))
		fprintf(stderr, "bench: %s killed by signal %d\n", who,
		        WTERMSIG(st));
	else
		fprintf(stderr, "bench: %s exited with status %d\n", who,
		        WEXITSTATUS(st));
	return -1;
}

int bench_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0 || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

int bench_parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;
	size_t mult = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || v == 0 || s[0] == '-')
		return -1;
	if (*end == 'k' || *end == 'K')
		mult = BENCH_KIB;
	else if (*end == 'm' || *end == 'M')
		mult = BENCH_MIB;
	if (mult != 1)
		end++;
	if (mult != 1 && strcmp(end, "iB") != 0 && strcmp(end, "B") != 0 &&
	    *end)
		return -1;
	if (mult == 1 && strcmp(end, "B") != 0 && *end)
		return -1;
	if (v > SIZE_MAX / mult)
		return -1;
	*out = (size_t)v * mult;
	return 0;
}

void bench_put_seq(void *p, uint64_t seq)
{
	unsigned char *b = p;

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(seq >> (8 * i));
}

uint64_t bench_get_seq(const void *p)
{
	const unsigned char *b = p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}
