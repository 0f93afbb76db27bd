/*
 * bench/seal_cost.c - the cost of sealing (issue 4): ns per frame to seal
 * and to open one DATA frame body with the 40-byte header as associated
 * data, through the library's own AEAD (security/aead.c), for both
 * ciphers and a range of frame sizes. Single thread, no I/O.
 *
 *   seal_cost [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/clock.h"
#include "security/aead.h"

static double per_frame_ns(tsm__aead *tx, tsm__aead *rx, uint8_t *buf,
                           size_t n, int iters, bool open)
{
	uint8_t hdr[40] = {0x54, 0x4d, 1, 6}, tag[16];
	struct iovec in = {buf, n};
	tsm_time t0 = tsm__now();
	for (int i = 0; i < iters; i++) {
		if (tsm__aead_seal(tx, (uint64_t)i, hdr, sizeof(hdr), &in, 1, buf, tag))
			exit(1);
		if (open && tsm__aead_open(rx, (uint64_t)i, hdr, sizeof(hdr), buf, n,
		                           buf, tag))
			exit(1);
	}
	return (double)(tsm__now() - t0) / iters;
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 20000;
	static const size_t sizes[] = {64, 1024, 16384, 65536};
	static const char *names[] = {"aes-256-gcm", "chacha20-poly1305"};
	uint8_t secret[32] = {1, 2, 3};
	uint8_t *buf = calloc(1, 65536);
	tsm__aead_set_limits(UINT64_MAX / 4, UINT64_MAX / 4);
	for (int alg = 0; alg < 2; alg++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			tsm__aead tx, rx;
			memset(&tx, 0, sizeof(tx));
			memset(&rx, 0, sizeof(rx));
			if (tsm__aead_init(&tx, alg, secret) || tsm__aead_init(&rx, alg, secret))
				return 1;
			int n = sizes[i] >= 16384 ? iters / 16 : iters;
			double seal = per_frame_ns(&tx, &rx, buf, sizes[i], n, false);
			tsm__aead_fini(&tx);
			memset(&tx, 0, sizeof(tx));
			tsm__aead_init(&tx, alg, secret);
			double both = per_frame_ns(&tx, &rx, buf, sizes[i], n, true);
			printf("seal: cipher=%s size=%zu seal_ns=%.0f open_ns=%.0f "
			       "gb_per_s=%.2f\n", names[alg], sizes[i], seal, both - seal,
			       sizes[i] / seal);
			tsm__aead_fini(&tx);
			tsm__aead_fini(&rx);
		}
	}
	free(buf);
	return 0;
}
