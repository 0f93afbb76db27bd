/*
 * tests/fuzz/fuzz_planted.c - a target with a bug planted on purpose, to
 * prove that the fuzzing set-up finds and reports one (run.sh expects this
 * target to FAIL; if it ever passes, the harness is broken, not the
 * library).
 *
 * An input that starts with "BUG!" reads one byte past the end of the
 * buffer libFuzzer hands over, which ASan reports as a heap-buffer-overflow.
 * The bytes are compared one at a time so that coverage feedback, not
 * luck, leads the fuzzer there from a seed like "BUG.". Test-only: nothing
 * of the library is involved.
 */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= 4 && data[0] == 'B' && data[1] == 'U' && data[2] == 'G' &&
	    data[3] == '!') {
		volatile uint8_t past_end = data[size]; /* the planted overread */
		(void)past_end;
	}
	return 0;
}
