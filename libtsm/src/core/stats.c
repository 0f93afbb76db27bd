/* core/stats.c - counter names and the public read functions. */
#include <string.h>

#include "core/internal.h"

static const char *const stat_names[ST__COUNT] = {
#define X(e, n) [e] = n,
	TSM_STATS_LIST(X)
#undef X
};

TSM_API tsm_err tsm_stats_get(tsm_ctx *ctx, const char *name, uint64_t *value)
{
	if (!ctx || !name || !value)
		return tsm__err_set(TSM_EINVAL, "tsm_stats_get: NULL argument");
	for (int i = 0; i < ST__COUNT; i++) {
		if (strcmp(stat_names[i], name) == 0) {
			*value = atomic_load_explicit(&ctx->stats.v[i],
			                              memory_order_relaxed);
			return TSM_OK;
		}
	}
	return tsm__err_set(TSM_ERR_BAD_PARAMS,
	                    "tsm_stats_get: no counter named '%s'", name);
}

TSM_API tsm_err tsm_stats_foreach(tsm_ctx *ctx, tsm_stats_fn fn, void *arg)
{
	if (!ctx || !fn)
		return tsm__err_set(TSM_EINVAL, "tsm_stats_foreach: NULL argument");
	for (int i = 0; i < ST__COUNT; i++)
		fn(arg, stat_names[i],
		   atomic_load_explicit(&ctx->stats.v[i], memory_order_relaxed));
	return TSM_OK;
}
