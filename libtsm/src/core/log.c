/*
 * core/log.c - log lines to the user's callback or stderr. Lines at a
 * level above the context's threshold cost one comparison.
 */
#include <stdarg.h>
#include <stdio.h>

#include "core/internal.h"

static const char *const lvl_names[] = {"error", "warn", "info", "debug"};

void tsm__log(tsm_ctx *ctx, tsm_log_level lvl, const char *fmt, ...)
{
	if (lvl > ctx->p.log_level)
		return;
	char line[512];
	int n = snprintf(line, sizeof(line), "tsm[%s] %s: ", ctx->name,
	                 lvl_names[lvl]);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (ctx->p.log)
		ctx->p.log(ctx->p.log_arg, lvl, line);
	else
		fprintf(stderr, "%s\n", line);
}
