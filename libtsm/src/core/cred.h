/*
 * core/cred.h - the context's credentials and policy: loaded at open,
 * watched for changes, reloaded without restart (security.md "Identity":
 * rotation). New handshakes use new material at once; a policy change is
 * applied to live sessions on the next loop iteration.
 *
 * Threading: tsm__cred_open/close run on the opening/closing thread
 * before/after the progress thread; tsm__cred_tick on the progress thread.
 */
#ifndef TSM_CORE_CRED_H
#define TSM_CORE_CRED_H

#include "core/internal.h"

tsm_err tsm__cred_open(tsm_ctx *ctx, const tsm_ctx_params *p);
/* tsm__cred_tick checks the files every reload_interval; returns the time
 * of its next check. */
tsm_time tsm__cred_tick(tsm_ctx *ctx, tsm_time now);
void tsm__cred_close(tsm_ctx *ctx);

#endif
