/*
 * tsm.h - libtsm, brokerless publish/subscribe for time-sensitive traffic.
 *
 * The one header to include. See docs/ for the guide and the reference.
 */
#ifndef TSM_H
#define TSM_H

#include "tsm/ctx.h"
#include "tsm/err.h"
#include "tsm/pubsub.h"
#include "tsm/stats.h"
#include "tsm/time.h"
#include "tsm/version.h"

#endif
