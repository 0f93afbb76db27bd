/* platform/clock.c - the exported clock and version. */
#include "core/common.h"
#include "platform/clock.h"

TSM_API tsm_time tsm_now(void)
{
	return tsm__now();
}

TSM_API const char *tsm_version(void)
{
	return TSM_VERSION_STRING;
}
