/*
 * tests/fuzz/fuzz_util.h - what every libFuzzer target here shares: the
 * entry point's prototype, a check macro that aborts (so libFuzzer records
 * the input as a crash), and a byte reader that turns fuzz input into
 * choices.
 *
 * A failed FUZZ_CHECK is a finding exactly like an ASan report: the input
 * is saved by libFuzzer and the message says which property broke.
 * Header-only and single-threaded, like the targets.
 */
#ifndef TSM_FUZZ_UTIL_H
#define TSM_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ",      \
			        __FILE__, __LINE__, #cond);                    \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

/* A reader over the fuzz input; past the end every read yields zero. */
typedef struct fz {
	const uint8_t *p;
	size_t left;
} fz;

static inline fz fz_init(const uint8_t *data, size_t size)
{
	return (fz){data, size};
}

static inline uint8_t fz_u8(fz *f)
{
	if (f->left == 0)
		return 0;
	f->left--;
	return *f->p++;
}

static inline uint16_t fz_u16(fz *f)
{
	uint16_t lo = fz_u8(f);
	return (uint16_t)(lo | (uint16_t)fz_u8(f) << 8);
}

static inline uint64_t fz_u64(fz *f)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)fz_u8(f) << (8 * i);
	return v;
}

/* fz_take hands out up to n bytes of the input (fewer at its end). */
static inline size_t fz_take(fz *f, size_t n, const uint8_t **out)
{
	if (n > f->left)
		n = f->left;
	*out = f->p;
	f->p += n;
	f->left -= n;
	return n;
}

/*
 * fz_split cuts the input at its first '\n' into two parts; without one,
 * both parts are the whole input. Text seeds stay readable this way, and
 * '\n' is outside every grammar the split is used for.
 */
static inline void fz_split(const uint8_t *d, size_t n, const char **a,
                            size_t *alen, const char **b, size_t *blen)
{
	const uint8_t *nl = memchr(d, '\n', n);
	*a = (const char *)d;
	*b = (const char *)d;
	*alen = *blen = n;
	if (nl) {
		*alen = (size_t)(nl - d);
		*b = (const char *)nl + 1;
		*blen = n - *alen - 1;
	}
}

/* fz_cstr copies n bytes into a fresh NUL-terminated heap string. */
static inline char *fz_cstr(const char *s, size_t n)
{
	char *c = malloc(n + 1);
	FUZZ_CHECK(c != NULL, "out of memory");
	if (n)
		memcpy(c, s, n);
	c[n] = '\0';
	return c;
}

#endif
